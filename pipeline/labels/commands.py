"""CLI commands of the labels stage (thin wrappers over library calls)."""

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the `mine` app."""
