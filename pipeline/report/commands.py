"""CLI commands of the report stage: ``mine report``, ``mine agree`` and ``mine validate-estimates``."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from pipeline.errors import UserError


class ReportFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    csv = "csv"
    latex = "latex"
    json = "json"
    html = "html"


class Source(str, Enum):
    gold = "gold"
    predicted = "predicted"
    both = "both"


class AgreeFormat(str, Enum):
    table = "table"
    json = "json"


def register(app: typer.Typer) -> None:
    """Add ``report``, ``agree`` and ``validate-estimates`` to the ``mine`` app."""

    @app.command("report")
    def report_cmd(
        label_files: Optional[List[Path]] = typer.Argument(None, help="Label files (.csv or .jsonl) [default: labels/study.csv]; later files win for an issue in several."),
        fmt: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Output format."),
        out: Optional[Path] = typer.Option(None, "--out", help="Write every table in every format (md, csv, tex, txt, report.json) into this folder."),
        top_k: int = typer.Option(5, "--top-k", help="Causes shown before the rest is binned (Tables 10 and 14)."),
        source: Source = typer.Option(Source.gold, "--from", help="gold: human labels only (Wilson intervals); predicted: estimate every filtered issue of the store from the classifier (error-corrected, bootstrap intervals); both: human labels where they exist, estimates for the rest."),
        db: Optional[Path] = typer.Option(None, "--db", help="The store [default: data/mine.db for --from predicted/both]; with gold it adds over-time tables of labelled issues it has dates for."),
        method: Optional[str] = typer.Option(None, "--method", help="Estimation method of predicted shares: cc, pcc, rpcc, acc, pacc [default: the one validate-estimates measured best, rpcc]."),
        bootstrap: int = typer.Option(1000, "--bootstrap", min=0, help="Bootstrap replicates of the intervals of estimated shares."),
        over_time: Optional[bool] = typer.Option(None, "--over-time/--no-over-time", help="Add tables per year and quarter of issue creation (figures with --out or --format html) [default: on with a store]."),
        validation: Optional[Path] = typer.Option(None, "--validation", help="JSON written by `mine validate-estimates --save`: its measured errors go into the HTML's 'how the numbers were made'."),
        model_dir: Optional[Path] = typer.Option(None, "--model", help="Trained model folder for --from predicted/both [default: data/model if current for the labels, else the shipped model; a retrain when due is cached beside the store]."),
        converter: Optional[List[str]] = typer.Option(None, "--converter", metavar="NAME", help="Only this converter's column (repeatable); the total is over the chosen ones [default: every converter of the labels or store]."),
    ) -> None:
        """Print the study's failure tables per converter and in total.

        Stage (Table 8), symptom (Table 9), cause with subtypes (Table 14), cause x symptom
        (Table 10: top-5 causes, the rest and rare symptoms binned) and cause x stage; every
        codebook category is listed, zero counts included.

        Every share carries a 95% interval: Wilson for human labels, bootstrap for the
        error-corrected estimates of --from predicted/both. With --out, also writes report.html
        and the figures (PNG and SVG); --format html prints the self-contained page.

        One column per converter (six with the packaged sources). On a narrow terminal each
        interval goes under its count and, when still too wide, the columns come in blocks
        that fit (e.g. "(1/2)"); LaTeX tables of many converters are `table*` in footnotesize.
        """
        from pipeline.label_files.files import default_label_files, read_many
        from pipeline.paths import default_db
        from pipeline.report.estimate import DEFAULT_METHOD, METHODS
        from pipeline.report.render import print_report, render
        from pipeline.report.trends import full_report

        if method is not None and method not in METHODS:
            raise UserError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
        labels = read_many(label_files or default_label_files())
        store = db if db is not None else (default_db() if source != Source.gold else None)
        with_time = over_time if over_time is not None else store is not None
        conn = None
        if store is not None:
            from pipeline.store.db import open_store

            conn = open_store(store, must_exist=True, hint=f"run `mine crawl --db {store}` first")
        data = None
        if conn is not None and source != Source.gold:
            from pipeline.report.estimate import load_store_data
            from pipeline.report.tables import check_converters
            from pipeline.report.trends import store_converters

            if converter:  # before any classifying: a misspelt name costs nothing
                check_converters(converter, store_converters(conn), "the store's filtered issues")
            data = load_store_data(conn, labels, model_path=model_dir, cache_dir=Path(store).parent / "models",
                                   log=lambda m: Console(stderr=True).print(m, highlight=False))
        rep, trends, _ = full_report(labels, source.value, conn, method=method or DEFAULT_METHOD,
                                     bootstrap=bootstrap, over_time=with_time, top_k=top_k, data=data,
                                     converters=converter)
        val = load_validation(validation)
        # the operator tables as a section of the HTML page, when a store holds the issue texts
        sections = operator_sections(conn, labels, source.value, data, method or DEFAULT_METHOD, bootstrap) \
            if conn is not None and (out is not None or fmt == ReportFormat.html) else []
        if out is not None:
            written = write_report_files(rep, trends, out, validation=val, sections=sections)
            Console(stderr=True).print(f"wrote {len(written)} files to {out}", highlight=False)
        if fmt == ReportFormat.table:
            print_report(rep)
            if trends:
                print_report(rep.with_tables(trends, notes=[]))  # the notes were printed with the study tables
        elif fmt == ReportFormat.html:
            from pipeline.report.figures import close_all, report_figures
            from pipeline.report.html import render_html

            figs = report_figures(trends, report=rep)
            typer.echo(render_html(rep, trends=trends, figures=figs, validation=val, sections=sections))
            close_all(figs)
        else:
            typer.echo(render(rep.with_tables({**rep.tables, **trends}) if trends else rep, fmt.value))

    @app.command("validate-estimates")
    def validate_cmd(
        label_files: Optional[List[Path]] = typer.Argument(None, help="Label files of two converters [default: labels/study.csv]."),
        db: Optional[Path] = typer.Option(None, "--db", help="A store holding the labelled issues' texts [default: data/study.db, as built by `make study-store`]."),
        bootstrap: int = typer.Option(1000, "--bootstrap", min=10, help="Bootstrap replicates per interval."),
        fmt: AgreeFormat = typer.Option(AgreeFormat.table, "--format", "-f", help="Output format."),
        save: Optional[Path] = typer.Option(None, "--save", help="Also write the result as JSON here (for `mine report --validation`)."),
    ) -> None:
        """Check the corrected estimates against known answers.

        Fits the classifier on one converter's labelled issues, estimates the other converter's
        stage and symptom shares, and the reverse; prints the absolute error (percentage points)
        of each share for the corrected estimate and for plain counting, and whether the gold
        share lies inside the 95% interval. Two text settings side by side: each issue's text
        (full where crawled; corrected per text kind, and pooled for comparison) and titles only.
        """
        from pipeline.label_files.files import default_label_files, read_many
        from pipeline.paths import PROJECT_ROOT
        from pipeline.report.validate import validate_estimates
        from pipeline.store.db import open_store

        store = db or PROJECT_ROOT / "data" / "study.db"
        conn = open_store(store, must_exist=True, hint="build it with `make study-store` (the study issues' texts), "
                          "or `mine import-study PAPER_DIR --db DB` for titles only")
        labels = read_many(label_files or default_label_files())
        res = validate_estimates(conn, labels, bootstrap=bootstrap)
        if save is not None:
            save.parent.mkdir(parents=True, exist_ok=True)
            save.write_text(json.dumps(res.to_dict(), indent=2) + "\n", encoding="utf-8")
        if fmt == AgreeFormat.json:
            typer.echo(json.dumps(res.to_dict(), indent=2))
            return
        print_validation(res, Console())

    @app.command("agree")
    def agree_cmd(
        file_a: Path = typer.Argument(..., help="First rater's label file (.csv or .jsonl)."),
        file_b: Path = typer.Argument(..., help="Second rater's label file."),
        fmt: AgreeFormat = typer.Option(AgreeFormat.table, "--format", "-f", help="Output format."),
    ) -> None:
        """Inter-rater agreement of two label files: Cohen's kappa per dimension.

        For each dimension both files rate, over the issues both label: Cohen's kappa
        (scikit-learn), raw agreement, n, and the list of disagreements.
        """
        from pipeline.label_files.files import read_labels
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


def operator_sections(conn, labels, mode: str, data, method: str, bootstrap: int) -> list[dict]:
    """The operator tables (:mod:`pipeline.report.operators`) as one HTML section."""
    from pipeline.report.operators import store_operator_report
    from pipeline.report.operators_render import close_figures, html_section, operator_figures

    rep = store_operator_report(conn, labels, mode, data=data, method=method, bootstrap=bootstrap)
    figs = operator_figures(rep)
    section = html_section(rep, figs)
    close_figures(figs)
    return [section]


def load_validation(path: Path | None) -> dict | None:
    """The summary of a saved ``mine validate-estimates --save`` file (``None`` without a path)."""
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))["summary"]
    except FileNotFoundError:
        raise UserError(f"{path}: validation file not found (write it with `mine validate-estimates --save {path}`)") from None
    except (json.JSONDecodeError, KeyError, TypeError):
        raise UserError(f"{path}: not a file written by `mine validate-estimates --save`") from None


def write_report_files(rep, trends: dict, out: Path, **html_kw) -> list[Path]:
    """Every table in every format (over-time tables included), the figures (PNG + SVG) and ``report.html``."""
    from pipeline.report.figures import close_all, report_figures, save
    from pipeline.report.html import write_html
    from pipeline.report.render import write_all

    written = write_all(rep.with_tables({**rep.tables, **trends}), out)
    figs = report_figures(trends, report=rep)
    for name, fig in figs.items():
        written += save(fig, Path(out) / "figures", name)
    written.append(write_html(Path(out) / "report.html", rep, trends=trends, figures=figs, **html_kw))
    close_all(figs)
    return written


def print_validation(res, console: Console) -> None:
    """The validation as tables: per direction and share, corrected vs plain-count error and coverage
    (the reports' own setting), then the mean errors of every method in every setting.

    Short headers (explained once, above the tables) keep each table within 80 columns."""
    from rich import box

    from pipeline.codebook import load_codebook
    from pipeline.report.render import category_name

    cb = load_codebook()
    s = res.summary
    chosen = s["chosen_method"]
    rows = res.rows
    main_text, main_cal = s["setting"].split("/")
    main = rows[(rows["text"] == main_text) & (rows["calibration"] == main_cal)]
    console.print(f"gold: the human labels' share; {chosen} [95%]: the corrected estimate and its interval; in: gold "
                  "inside it; err: absolute error in percentage points; count: plain classify-and-count. "
                  f"Setting of these tables (the reports' own): {main_text} text, each target issue corrected by the "
                  "training issues of its own text kind", highlight=False)
    for (train, target, dim), sub in main.groupby(["train", "target", "dimension"], sort=True):
        # two spaces between columns and no edges: 77 columns with the longest category name
        t = Table(title=f"train {train} -> estimate {target}: {dim}", title_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, show_edge=False, padding=(0, 1), collapse_padding=True)
        for c in ("category", "gold", f"{chosen} [95%]", "in", "err", "count", "err"):
            t.add_column(c, justify="left" if c == "category" else "right", no_wrap=True)
        ch = sub[sub["method"] == chosen].set_index("category")
        cc = sub[sub["method"] == "cc"].set_index("category")
        for cat, r in ch.iterrows():
            t.add_row(category_name(cb, dim, cat), f"{r.gold:.1%}", f"{r.estimate:.1%} [{r.low:.1%}, {r.high:.1%}]",
                      "yes" if r.inside else "NO", f"{r.abs_error_pp:.1f}", f"{cc.loc[cat, 'estimate']:.1%}",
                      f"{cc.loc[cat, 'abs_error_pp']:.1f}")
        console.print(t)
    settings = list(s["settings"])
    names = {"full/matched": "full, by kind", "full/pooled": "full, pooled", "title/matched": "titles only"}
    t = Table(title="mean absolute error per share (pp) / gold inside the 95% interval, both directions",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, padding=(0, 1),
              collapse_padding=True)
    t.add_column("method")
    for name in settings:
        t.add_column(names.get(name, name), justify="right")
    for m in sorted(s["mean_abs_error_pp"], key=s["mean_abs_error_pp"].get):
        t.add_row(m + (" (chosen)" if m == chosen else ""),
                  *[f"{s['settings'][n]['mean_abs_error_pp'][m]:.2f} / {s['settings'][n]['coverage'][m]:.0%}"
                    for n in settings])
    console.print(t)
    console.print("full, by kind: each issue's text, corrected per text kind (the reports); full, pooled: corrected "
                  "by all training issues whatever their text; titles only: every issue by its title. "
                  f"Corrected ({chosen}) error <= plain counting: {'yes' if s['corrected_not_worse_than_counting'] else 'NO'}; "
                  f"node conversion and wrong model inside their intervals in both directions: "
                  f"{'yes' if s['key_shares_inside'] else 'NO'}", highlight=False)
