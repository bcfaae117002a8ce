"""The nightly run: crawl, filter, classify what is new, report (``mine nightly``)."""

import typer


def register(app: typer.Typer) -> None:
    """Add ``mine nightly`` to the app."""
