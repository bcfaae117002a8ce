"""Help texts print their placeholders: typer's Markdown mode reads ``<labels-dir>/<rater>`` as HTML
and drops it unless it is quoted as code."""

from __future__ import annotations

import re

import typer
from typer.testing import CliRunner

from pipeline.cli import app

_PLACEHOLDER = re.compile(r"<[a-z][a-z-]*>")


def _commands(group, path: tuple[str, ...] = ()):
    """Every command of the app with its argv path (typer ships its own click: duck-typed)."""
    yield path, group
    for name, sub in (getattr(group, "commands", None) or {}).items():
        yield from _commands(sub, (*path, name))


def test_every_placeholder_in_a_help_text_is_printed():
    root = typer.main.get_command(app)
    checked = 0
    for path, cmd in _commands(root):
        texts = [cmd.help or ""] + [getattr(p, "help", None) or "" for p in cmd.params]
        wanted = {m for t in texts for m in _PLACEHOLDER.findall(t)}
        if not wanted:
            continue
        out = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "250"}).output
        for placeholder in wanted:
            assert placeholder in out, (path, placeholder, out)
        checked += 1
    assert checked >= 3  # label, adjudicate, labels import at least


def test_label_help_names_the_label_file():
    out = CliRunner().invoke(app, ["label", "--help"], env={"COLUMNS": "250"}).output
    assert "<labels-dir>/<rater>.jsonl" in out and "/.jsonl" not in out.replace("<rater>.jsonl", "")
