"""CLI commands of the sample stage (thin wrappers over library calls): ``filter``, ``sample``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import UserError


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the `mine` app."""

    @app.command("filter")
    def filter_cmd(
        db: Optional[Path] = typer.Option(None, "--db", help="SQLite store (default data/mine.db)."),
        sources_file: Optional[Path] = typer.Option(None, "--sources", help="Sources YAML (default: pipeline/sources.yaml)."),
        fmt: str = typer.Option("text", "--format", help="text or json."),
    ) -> None:
        """Apply the study's data-availability filter to stored timelines; per source relevant vs kept.

        Kept: any `closed` or `referenced` event with a commit_id, a `cross-referenced` event from a
        closed issue in one of the source's xref_repos (the study's two: pytorch/pytorch or
        onnx/tensorflow-onnx), or a `connected` event."""
        from pipeline.sample.filter import filter_counts
        from pipeline.sources import load_sources
        from pipeline.store.db import open_store

        if fmt not in ("text", "json"):
            raise UserError(f"--format {fmt!r}: use text or json")
        sources = load_sources(sources_file)
        conn = open_store(db, must_exist=True)
        try:
            counts = filter_counts(conn, sources)
        finally:
            conn.close()
        if fmt == "json":
            sys.stdout.write(json.dumps({"sources": counts}, indent=2) + "\n")
            return
        table = Table(title="data-availability filter")
        for col in ("source", "relevant", "with timeline", "kept"):
            table.add_column(col)
        for name, c in counts.items():
            table.add_row(name, str(c["relevant"]), str(c["with_timeline"]), str(c["kept"]))
        Console(highlight=False).print(table)

    @app.command("sample")
    def sample_cmd(
        n: int = typer.Option(100, "--n", help="Issues per converter."),
        seed: int = typer.Option(0, "--seed", help="Random seed (same store + seed = same sample)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Queue file to write (default data/queue-sample.txt)."),
        db: Optional[Path] = typer.Option(None, "--db", help="SQLite store (default data/mine.db)."),
        sources_file: Optional[Path] = typer.Option(None, "--sources", help="Sources YAML (default: pipeline/sources.yaml)."),
    ) -> None:
        """Draw a reproducible random sample per converter of the filtered issues into a labelling queue.

        Queue format: one issue URL per line; `# converter: NAME` lines start each converter's block;
        other `#` lines are comments."""
        from pipeline.sample.sample import default_queue, sample_issues, write_queue
        from pipeline.sources import load_sources
        from pipeline.store.db import open_store

        sources = load_sources(sources_file)
        conn = open_store(db, must_exist=True)
        try:
            samples = sample_issues(conn, n=n, seed=seed, sources=sources)
        finally:
            conn.close()
        path = write_queue(out or default_queue(), samples, n=n, seed=seed)
        con = Console(highlight=False)
        for name, urls in samples.items():
            note = "" if len(urls) == n else f" (only {len(urls)} kept issues)"
            con.print(f"{name}: {len(urls)} issues{note}")
        con.print(f"wrote {path}")
