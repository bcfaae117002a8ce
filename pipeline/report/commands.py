"""CLI commands of the report stage: ``mine report`` and ``mine agree``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from pipeline.paths import labels_dir


class ReportFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    latex = "latex"
    json = "json"


class AgreeFormat(str, Enum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add ``report`` and ``agree`` to the ``mine`` app."""

    @app.command("report")
    def report_cmd(
        label_files: Optional[List[Path]] = typer.Argument(None, help="Label files (.csv or .jsonl) [default: labels/study.csv]; later files win for an issue in several."),
        fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Output format."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write every table in every format (md, csv, tex, txt, report.json) into this folder."),
        top_k: int = typer.Option(5, "--top-k", help="Causes shown before the rest is binned (Tables 10 and 14)."),
    ) -> None:
        """Print the study's tables: stage (Table 8), symptom (Table 9), cause with subtypes
        (Table 14), cause x symptom (Table 10) and cause x stage, per converter and in total.
        """
        from pipeline.labels.files import read_many
        from pipeline.report.render import print_report, render, write_all
        from pipeline.report.tables import build_report

        files = label_files or [labels_dir() / "study.csv"]
        rep = build_report(read_many(files), top_k=top_k)
        if out is not None:
            written = write_all(rep, out)
            Console(stderr=True).print(f"wrote {len(written)} files to {out}", highlight=False)
        if fmt == ReportFormat.table:
            print_report(rep)
        else:
            typer.echo(render(rep, fmt.value))

    @app.command("agree")
    def agree_cmd(
        file_a: Path = typer.Argument(..., help="First rater's label file (.csv or .jsonl)."),
        file_b: Path = typer.Argument(..., help="Second rater's label file."),
        fmt: AgreeFormat = typer.Option(AgreeFormat.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Inter-rater agreement: Cohen's kappa, raw agreement, n and the disagreements, for
        each dimension both files rate, over the issues both files label.
        """
        from pipeline.labels.files import read_labels
        from pipeline.report.agreement import agreement

        res = agreement(read_labels(file_a), read_labels(file_b))
        if fmt == AgreeFormat.json:
            typer.echo(json.dumps(res, indent=2))
            return
        console = Console(soft_wrap=True)
        console.print(f"{res['n']} issues in both files ({res['only_a']} only in A, {res['only_b']} only in B)", highlight=False)
        t = Table(title="Agreement", title_justify="left")
        for c in ("dimension", "Cohen's kappa", "agreement", "n", "disagreements"):
            t.add_column(c, justify="left" if c == "dimension" else "right")
        for dim, d in res["dimensions"].items():
            kappa = "undefined" if d["kappa"] is None else f"{d['kappa']:.2f}"
            t.add_row(dim, kappa, f"{d['agreement']:.1%}", str(d["n"]), str(len(d["disagreements"])))
        console.print(t)
        for dim, d in res["dimensions"].items():
            for x in d["disagreements"]:
                console.print(f"  {dim}: {x['url']}  A={x['a'] or '-'}  B={x['b'] or '-'}", highlight=False)
