"""Mine, label, classify and report GitHub issues of deep-learning model converters.

The package follows the data flow: ``crawl`` -> ``store`` -> ``sample`` (filter and
sampling) -> ``label`` / ``classify`` -> ``report``. Every CLI command in
:mod:`pipeline.cli` is a thin wrapper over a function you can call from Python.
"""

__version__ = "0.1.0"
