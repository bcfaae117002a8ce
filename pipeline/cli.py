"""The ``mine`` command line: one thin command per library call, grouped by pipeline stage.

Each stage keeps its commands in its own ``commands.py`` with a ``register(app)`` function;
this module only assembles them and turns :class:`~pipeline.errors.UserError` into a
one-line message and exit code 2.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

from pipeline.errors import UserError

app = typer.Typer(
    name="mine",
    help=(
        "Mine, label, classify and report GitHub issues of ONNX model converters, reproducing "
        "and extending Jajal et al. (ISSTA 2024). Data flows crawl -> store -> filter/sample -> "
        "label/classify -> report."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

# Order is the pipeline's order; it is also the order of `mine --help`.
_STAGES = (
    "pipeline.label_files.commands",   # import-study
    "pipeline.crawl.commands",    # crawl, status
    "pipeline.emulator.commands", # emulate
    "pipeline.sample.commands",   # filter, sample
    "pipeline.labelling.commands",    # label, adjudicate, labels export/import
    "pipeline.classify.commands", # train, classify, evaluate
    "pipeline.report.commands",   # report, agree, validate-estimates
    "pipeline.operators.commands",  # operators evaluate/refresh/extract/build-dictionary/report
    "pipeline.nightly",           # nightly
)

for _mod in _STAGES:
    __import__(_mod, fromlist=["register"]).register(app)


def main() -> None:
    """Console entry point: runs the app, printing user errors on one line (exit 2)."""
    # `mine report operators ...` is `mine operators report ...`: the study tables' command takes
    # label files as arguments, so the operator tables get their own command behind that name
    if sys.argv[1:3] == ["report", "operators"]:
        sys.argv[1:3] = ["operators", "report"]
    try:
        app()
    except UserError as e:
        # the message may quote user data (labels such as "[bug]"): never read it as markup
        Console(stderr=True, highlight=False, soft_wrap=True).print(Text.assemble(("error:", "bold red"), " ", str(e)))
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
