"""The operator tables (:mod:`pipeline.report.operators`) as terminal tables, Markdown, CSV, LaTeX,
JSON and HTML, and the operator x symptom heat map (PNG + SVG through :mod:`pipeline.report.figures`).

Operator names are shown as ``namespace:Name``; cross tables are pivoted (one row per operator,
a column per stage or symptom, totals over all converters); the Markdown and LaTeX writers are
those of :mod:`pipeline.report.render`, so escaping is the same everywhere.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from pipeline.codebook import load_codebook
from pipeline.report.operators import BIN_NAMES, OPERATOR_TITLES
from pipeline.report.render import _pct, category_name, to_latex, to_markdown, terminal_tables
from pipeline.report.tables import TOTAL, Report

_KEY_COLUMNS = ("Operator", "Pair", "Year", "First year", "Method")


def _op(name: str) -> str:
    return BIN_NAMES.get(name, name)


def _cell(count: float, share: float, ci: list | None = None) -> str:
    text = f"{count:g} ({_pct(share)})"
    return text + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


def operator_frame(rep: Report, name: str) -> pd.DataFrame:
    """One operator table as a display DataFrame."""
    cb = load_codebook()
    rows = rep.tables[name]
    cols = [*rep.converters, TOTAL]
    head = lambda c: "Total" if c == TOTAL else c  # noqa: E731
    if name in ("operator_x_stage", "operator_x_symptom"):
        dim = "stage" if name == "operator_x_stage" else "symptom"
        cats = list(dict.fromkeys(r[dim] for r in rows))
        recs = {}
        for r in rows:
            rec = recs.setdefault(r["category"], {"Operator": _op(r["category"])})
            rec[category_name(cb, dim, r[dim])] = f"{r['counts'][TOTAL]:g}"
        df = pd.DataFrame(list(recs.values()), columns=["Operator", *[category_name(cb, dim, c) for c in cats]])
        df["Total"] = [f"{sum(r['counts'][TOTAL] for r in rows if r['category'] == op):g}" for op in recs]
        df["Method"] = [next(r["method"] for r in rows if r["category"] == op) for op in recs]
        return df
    if name == "operator_pairs":
        return pd.DataFrame([{"Pair": r["category"], "Wrong-model issues naming both": f"{r['counts']['together']:g}",
                              "naming the first": f"{r['counts']['first']:g}", "naming the second": f"{r['counts']['second']:g}",
                              "wrong-model issues": f"{r['counts']['wrong_model']:g}", "Lift": f"{r['lift']:.2f}",
                              "Issues naming both": str(r["issues_together"]), "Method": r["method"]} for r in rows],
                            columns=["Pair", "Wrong-model issues naming both", "naming the first", "naming the second",
                                     "wrong-model issues", "Lift", "Issues naming both", "Method"])
    if name == "operator_wrong_model":
        return pd.DataFrame([{"Operator": _op(r["category"]), "Issues": f"{r['n'][TOTAL]:g}",
                              **{head(c): _cell(r["counts"][c], r["share"][c], r["ci"][c]) if r["n"][c] else "-" for c in cols},
                              "Method": r["method"]} for r in rows],
                            columns=["Operator", "Issues", *[head(c) for c in cols], "Method"])
    recs = []
    for r in rows:
        rec = {"Operator": _op(r["category"])}
        if "period" in r:
            rec = {"Year": r["period"], **rec, "First year": r["first_year"]}
        rec.update({head(c): _cell(r["counts"][c], r["share"][c]) for c in cols})
        rec["Method"] = r["method"]
        recs.append(rec)
    return pd.DataFrame(recs)


def tidy_operator_frame(rep: Report) -> pd.DataFrame:
    """Every operator table in one long table: ``table, operator, stage, symptom, period, column,
    count, share, ci_low, ci_high, lift, method`` (ids, not display names)."""
    recs = []
    for name, rows in rep.tables.items():
        for r in rows:
            for col, count in r["counts"].items():
                ci = (r.get("ci") or {}).get(col) or (None, None)
                recs.append({"table": name, "operator": r["category"], "stage": r.get("stage", ""),
                             "symptom": r.get("symptom", ""), "period": r.get("period", ""), "column": col,
                             "count": count, "share": r["share"][col], "ci_low": ci[0], "ci_high": ci[1],
                             "lift": r.get("lift", ""), "method": r.get("method", "")})
    return pd.DataFrame(recs, columns=["table", "operator", "stage", "symptom", "period", "column", "count", "share",
                                       "ci_low", "ci_high", "lift", "method"])


def render_operators(rep: Report, fmt: str, figures: dict | None = None) -> str:
    """The operator report as text in ``fmt`` (markdown, csv, latex, json, html)."""
    if fmt == "json":
        return json.dumps(rep.to_dict(), indent=2)
    if fmt == "csv":
        return tidy_operator_frame(rep).to_csv(index=False, lineterminator="\n")
    if fmt == "markdown":
        parts = [f"### {OPERATOR_TITLES.get(n, n)}\n\n{to_markdown(operator_frame(rep, n))}\n" for n in rep.tables]
        if rep.notes:
            parts.append("Notes:\n\n" + "\n".join(f"- {n}" for n in rep.notes) + "\n")
        return "\n".join(parts)
    if fmt == "latex":
        return "\n".join(to_latex(operator_frame(rep, n), OPERATOR_TITLES.get(n, n), n) + "\n" for n in rep.tables)
    if fmt == "html":
        return operators_html(rep, figures or {})
    raise ValueError(f"unknown format {fmt!r}")


def print_operators(rep: Report, console: Console | None = None) -> None:
    """Rich tables on the terminal, then the notes."""
    console = console or Console()
    head = f"{rep.n} issues: " + ", ".join(f"{c} {rep.columns.get(c, '')}" for c in rep.converters)
    console.print(f"[bold]{head}[/] (source: {rep.source})", highlight=False)
    for name in rep.tables:
        df = operator_frame(rep, name)
        title = OPERATOR_TITLES.get(name, name)
        if not len(df):
            t = Table(title=title, title_justify="left")
            for c in df.columns:
                t.add_column(str(c))
            t.add_row(*["-"] * max(len(df.columns), 1))
            console.print(t)
            continue
        # the main report's layout: whole when it fits, else intervals under counts, else blocks of columns
        for t in terminal_tables(df, title, console.width, is_value=lambda c: c not in _KEY_COLUMNS):
            console.print(t)
    for n in rep.notes:
        console.print(f"[dim]note: {n}[/]", highlight=False)


def html_tables(rep: Report) -> list[dict]:
    """The tables in the shape the report template renders (autoescaped there)."""
    out = []
    for name in rep.tables:
        df = operator_frame(rep, name)
        keys = sum(1 for c in df.columns if c in _KEY_COLUMNS[:3])
        out.append({"name": name, "title": OPERATOR_TITLES.get(name, name), "header": [str(c) for c in df.columns],
                    "groups": [], "rows": [[str(v) for v in rec] for rec in df.itertuples(index=False)],
                    "nkeys": max(keys, 1)})
    return out


def _figure_dicts(figures: dict) -> list[dict]:
    import base64

    from pipeline.report.figures import png_bytes

    return [{"name": n, "png": base64.b64encode(png_bytes(f)).decode("ascii"), "width": int(f.get_size_inches()[0] * 110),
             "caption": f.axes[0].get_title() if f.axes else n} for n, f in figures.items()]


LEGEND = ("Each cell: number of issues (estimated counts are fractional), its share of the column's issues and the "
          "share's 95% interval in brackets. An issue naming several operators counts in each row.")


def html_section(rep: Report, figures: dict) -> dict:
    """The operator tables as a section of the main HTML report (``render_html(..., sections=[...])``)."""
    return {"id": "operators", "title": "Operators", "intro": LEGEND, "tables": html_tables(rep),
            "figures": _figure_dicts(figures), "notes": list(rep.notes)}


def operators_html(rep: Report, figures: dict) -> str:
    """A self-contained page of the operator tables and figures (the report's template and styles)."""
    from datetime import UTC, datetime

    from pipeline.report.html import SOURCES, _env

    cols = ", ".join(f"{c} {rep.columns.get(c, '')}" for c in rep.converters)
    return _env().get_template("report.html").render(
        title="ONNX converter failures: operators", n=rep.n, columns_text=cols, source=rep.source,
        source_text=SOURCES.get(rep.source, rep.source), legend=LEGEND,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), tables=html_tables(rep), trend_tables=[],
        figures=_figure_dicts(figures), how=[], notes=list(rep.notes), validation=[], changes=[], new_issues=[],
        sections=[])


def heatmap(rep: Report, name: str = "operator_x_symptom"):
    """Heat map of a cross table: per operator (row), the share of its issues in each column category."""
    import matplotlib.pyplot as plt

    from pipeline.report import figures as _figures  # noqa: F401  (sets the Agg backend and rcParams)

    cb = load_codebook()
    dim = "symptom" if name.endswith("symptom") else "stage"
    rows = rep.tables.get(name) or []
    ops = list(dict.fromkeys(r["category"] for r in rows))
    cats = list(dict.fromkeys(r[dim] for r in rows))
    counts = pd.DataFrame(0.0, index=ops, columns=cats)
    for r in rows:
        counts.loc[r["category"], r[dim]] = r["counts"][TOTAL]
    shares = counts.div(counts.sum(axis=1).where(lambda s: s > 0, 1), axis=0)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(cats) + 3), max(2.5, 0.38 * len(ops) + 1.5)))
    if counts.empty:
        ax.text(0.5, 0.5, "no operator issues in scope", ha="center", va="center")
        ax.set_axis_off()
    else:
        im = ax.imshow(shares.to_numpy(), cmap="Reds", vmin=0, vmax=1, aspect="auto")
        ax.set_xticks(range(len(cats)), [category_name(cb, dim, c) for c in cats], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(ops)), [_op(o) for o in ops], fontsize=8)
        for i, op in enumerate(ops):
            for j, c in enumerate(cats):
                v = counts.loc[op, c]
                if v:
                    ax.text(j, i, f"{v:g}", ha="center", va="center", fontsize=7,
                            color="white" if shares.loc[op, c] > 0.6 else "#222")
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02, label="share of the operator's issues")
    method = rows[0]["method"] if rows else ""
    ax.set_title(f"Operator by {dim} (issues per cell; colour: share of the row; {method})", fontsize=10)
    fig.tight_layout()
    return fig


def operator_figures(rep: Report) -> dict:
    """``{"operator_x_symptom": Figure}`` (and stage), for the tables the report holds."""
    return {n: heatmap(rep, n) for n in ("operator_x_symptom", "operator_x_stage") if rep.tables.get(n)}


def write_operator_files(rep: Report, out_dir: Path | str) -> list[Path]:
    """Every operator table as ``<table>.{md,csv,tex,txt}``, ``operators.json``, ``operators.html`` and the
    heat maps under ``figures/`` (PNG + SVG)."""
    from pipeline.report.figures import close_all, save

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in rep.tables:
        frame = operator_frame(rep, name)
        title = OPERATOR_TITLES.get(name, name)
        buf = Console(record=True, width=180, file=io.StringIO())
        print_operators(rep.with_tables({name: rep.tables[name]}, notes=[]), buf)
        one = rep.with_tables({name: rep.tables[name]}, notes=[])
        for ext, text in {"md": f"### {title}\n\n{to_markdown(frame)}\n", "csv": tidy_operator_frame(one).to_csv(index=False),
                          "tex": to_latex(frame, title, name) + "\n", "txt": buf.export_text()}.items():
            p = out / f"{name}.{ext}"
            p.write_text(text, encoding="utf-8")
            written.append(p)
    figs = operator_figures(rep)
    for name, fig in figs.items():
        written += save(fig, out / "figures", name)
    (out / "operators.json").write_text(render_operators(rep, "json") + "\n", encoding="utf-8")
    (out / "operators.html").write_text(operators_html(rep, figs), encoding="utf-8")
    written += [out / "operators.json", out / "operators.html"]
    close_all(figs)
    return written


def close_figures(figs: dict) -> None:
    from pipeline.report.figures import close_all

    close_all(figs)
