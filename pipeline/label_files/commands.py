"""CLI commands of the label-files stage: ``mine import-study``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    """Add ``import-study`` to the ``mine`` app."""

    @app.command("import-study")
    def import_study_cmd(
        paper_dir: Path = typer.Argument(..., help="Folder holding FailureAnalysis.xlsx and PilotStudy.xlsx (e.g. ../shared/paper)."),
        out: Optional[Path] = typer.Option(None, "--out", help="Where to write the label files [default: labels/]."),
        db: Optional[Path] = typer.Option(None, "--db", help="Also record the issue titles in this store (titles are never written to label files)."),
    ) -> None:
        """Import the study's labelled issues into label files keyed by issue URL.

        Writes study.csv (200 issues: stage, symptom, cause, cause_subtype), pilot-r1.csv and
        pilot-r2.csv (60 pilot issues, cause and symptom, two raters), drift-a.csv and drift-b.csv
        (the drift check). Spellings and number codes are mapped through labels/codebook.yaml;
        anything unknown stops the import with the sheet, row and column at fault.
        """
        from pipeline.label_files.study_import import import_study

        console = Console()
        result = import_study(paper_dir, out_dir=out)
        for stem, path in result.files.items():
            console.print(f"wrote {path} ({len(result.tables[stem])} issues)", highlight=False)
        if db is not None:
            from pipeline.classify.titles import record_titles
            from pipeline.store.db import open_store

            conn = open_store(db)
            try:
                n = record_titles(conn, result.titles.items())
            finally:
                conn.close()
            console.print(f"recorded {n} titles in {db}", highlight=False)
