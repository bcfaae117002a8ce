"""CLI commands of the operator analysis: ``mine operators evaluate|refresh|extract|build-dictionary|report``
(``mine report operators`` is the same as ``mine operators report``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from pipeline.errors import UserError
# the same formats and sources as the study tables' `mine report`
from pipeline.report.commands import ReportFormat as Fmt
from pipeline.report.commands import Source

operators_app = typer.Typer(help="Operators named in issues: extraction, its gold, the operator tables.",
                            no_args_is_help=True)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


@operators_app.command("evaluate")
def evaluate_cmd(
    gold: Optional[Path] = typer.Option(None, "--gold", help="Gold file [default: labels/operators-gold.csv]."),
    issues: Optional[List[Path]] = typer.Option(None, "--issues", help="JSON-lines issue text files [default: ../shared/github-issues/*.jsonl]."),
    errors: bool = typer.Option(False, "--errors", help="Also list, per issue, the operators missed and the spurious ones."),
    as_json: bool = typer.Option(False, "--json", help="Print the scores as JSON."),
) -> None:
    """Precision and recall of the operator extractor on the hand-made gold, per split (dev, heldout) and overall."""
    from rich.table import Table

    from pipeline.operators.extract import extractor_version
    from pipeline.operators.gold import evaluate_gold

    scores = evaluate_gold(gold, issues)
    if as_json:
        typer.echo(json.dumps({"extractor_version": extractor_version(),
                               **{k: v.to_dict() for k, v in scores.items()}}, indent=2))
        return
    from rich import box

    t = Table(title=f"Operator extraction on the gold (extractor {extractor_version()}); targets: precision >= 0.90, recall >= 0.85",
              title_justify="left", box=box.SIMPLE_HEAD)
    # gold / found / right: operators in the gold, extracted, extracted and in the gold (fits 80 columns)
    for c in ("split", "issues", "gold", "found", "right", "precision", "recall", "F1"):
        t.add_column(c, justify="left" if c == "split" else "right", no_wrap=True)
    for split, s in scores.items():
        t.add_row(split, str(s.issues), str(s.gold), str(s.extracted), str(s.correct),
                  f"{s.precision:.3f}", f"{s.recall:.3f}", f"{s.f1:.3f}")
    _out.print(t)
    _out.print("gold: operators the annotator found; found: operators extracted; right: found and in the gold",
               highlight=False)
    if errors:
        for split in ("dev", "heldout"):
            for e in scores[split].errors:
                _out.print(f"{split}  {e['url']}  missed: {' '.join(e['missed']) or '-'}  spurious: {' '.join(e['spurious']) or '-'}")


@operators_app.command("refresh")
def refresh_cmd(db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db].")) -> None:
    """Extract the operators of every stored issue whose text or the extractor changed (the rest is kept)."""
    from pipeline.operators.store import refresh_operators
    from pipeline.store.db import open_store

    conn = open_store(db, must_exist=True)
    res = refresh_operators(conn, progress=True)
    n = conn.execute("SELECT COUNT(DISTINCT url) FROM issue_operators").fetchone()[0]
    _out.print(f"{res.issues} issues with text; {res.extracted} extracted now (extractor {res.version}); "
               f"{n} name at least one operator")


@operators_app.command("extract")
def extract_cmd(
    url: str = typer.Argument(..., help="An issue URL in the store."),
    db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]."),
) -> None:
    """Print the operators one stored issue names (extracted now, from the store's text of it)."""
    from pipeline.operators.extract import extract_operators
    from pipeline.operators.store import issue_texts
    from pipeline.store.db import open_store

    conn = open_store(db, must_exist=True)
    t = next((t for t in issue_texts(conn) if t.url == url), None)
    if t is None:
        raise UserError(f"{url}: not in the store (neither crawled nor a known title)")
    for op in extract_operators(t.title, t.body, t.comments, t.repo):
        _out.print(str(op))


@operators_app.command("build-dictionary")
def build_cmd(
    tf2onnx: Optional[Path] = typer.Option(None, "--tf2onnx", help="A tf2onnx source checkout (its @tf_op handler registrations); without it the TF names are kept."),
    paddle2onnx: Optional[Path] = typer.Option(None, "--paddle2onnx", help="A Paddle2ONNX source checkout (its REGISTER_MAPPER registrations); without it the Paddle names are kept."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write [default: pipeline/operators/operators.json]."),
) -> None:
    """Regenerate the operator dictionary from the installed onnx, torch and scikit-learn (and converter checkouts)."""
    from pipeline.operators.dictionary import DATA_FILE, build_dictionary, write_dictionary

    for p in (tf2onnx, paddle2onnx):
        if p is not None and not p.is_dir():
            raise UserError(f"{p}: not a folder")
    try:
        data = build_dictionary(tf2onnx, paddle2onnx)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    path = write_dictionary(data, out or DATA_FILE)
    _out.print(f"wrote {path}: " + ", ".join(f"{ns} {len(v)}" for ns, v in data["names"].items()))


@operators_app.command("report")
def report_cmd(
    label_files: Optional[List[Path]] = typer.Argument(None, help="Label files [default: labels/study.csv]; later files win."),
    db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]: issue texts (or titles) the operators come from."),
    source: Source = typer.Option(Source.gold, "--from", help="gold: the labelled issues, human labels (Wilson intervals); both: every filtered issue, human labels where they exist and the classifier's corrected estimates elsewhere; predicted: estimates for every issue."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write every table in every format, operators.json, operators.html and the heat maps (PNG, SVG) here."),
    top_n: int = typer.Option(10, "--top", min=1, help="Operators shown before the rest is binned."),
    min_count: int = typer.Option(3, "--min-count", min=1, help="Issues an operator needs for the wrong-model share table."),
    min_pair: int = typer.Option(2, "--min-pair", min=1, help="Issues a pair needs to be named together for the pair table."),
    method: Optional[str] = typer.Option(None, "--method", help="Estimation method for --from both/predicted [default: rpcc]."),
    bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap replicates of estimated intervals."),
) -> None:
    """Operator tables: issues per operator and converter, operator x stage, operator x symptom,
    the highest wrong-model shares, pairs named together in wrong-model issues, operators per year.

    The operators come from each issue's stored text (title, body, comments; the title alone for
    issues known only by title), extracted again only where the text or the extractor changed.
    """
    from pipeline.classify.data import default_label_files
    from pipeline.label_files.files import read_many
    from pipeline.paths import default_db
    from pipeline.report.estimate import DEFAULT_METHOD, METHODS
    from pipeline.report.operators import store_operator_report
    from pipeline.report.operators_render import (close_figures, operator_figures, print_operators, render_operators,
                                                  write_operator_files)
    from pipeline.store.db import open_store

    if method is not None and method not in METHODS:
        raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    store = db if db is not None else default_db()
    conn = open_store(store, must_exist=True, hint=f"crawl (`mine crawl --db {store}`) or import the study's titles "
                      f"(`mine import-study ../shared/paper --db {store}`) first")
    labels = read_many(label_files or default_label_files())
    rep = store_operator_report(conn, labels, source.value, cache_dir=Path(store).parent / "models",
                                progress=True, top_n=top_n, min_count=min_count, min_pair=min_pair,
                                method=method or DEFAULT_METHOD, bootstrap=bootstrap)
    if out is not None:
        written = write_operator_files(rep, out)
        _err.print(f"wrote {len(written)} files to {out}")
    if fmt == Fmt.table:
        print_operators(rep, Console())  # tables split into blocks that fit the terminal
    elif fmt == Fmt.html:
        figs = operator_figures(rep)
        typer.echo(render_operators(rep, "html", figs))
        close_figures(figs)
    else:
        typer.echo(render_operators(rep, fmt.value))


def register(app: typer.Typer) -> None:
    """Add ``mine operators ...`` to the ``mine`` app."""
    app.add_typer(operators_app, name="operators")
