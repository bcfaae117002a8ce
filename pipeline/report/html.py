"""One self-contained HTML page of a report: tables with intervals, figures inline, and how it was made.

Everything shown is escaped by Jinja's autoescaping (category names, notes, titles of issues);
figures are embedded as base64 PNG, so the page needs no other file and no network.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape

from pipeline.codebook import Codebook, load_codebook
from pipeline.report.estimate import METHOD_NAMES
from pipeline.report.render import display_frame, is_value_col, is_wide, two_lines
from pipeline.report.tables import TABLE_TITLES, Report

_TEMPLATES = Path(__file__).with_name("templates")

HOW_GOLD = ("Gold tables count the human labels of the study (or of the label files given). Each share's "
            "interval is a Wilson score 95% interval for a proportion of that column's issues.")
HOW_ESTIMATED = (
    "Predicted tables are estimated from the project's classifier (a sentence embedding of each issue's title, "
    "with TF-IDF words for some dimensions, and a logistic regression per dimension) trained on the labelled issues. Counting each issue's most likely category is "
    "biased by the classifier's errors, so the shares are corrected: {method_name} ({method}). The method was "
    "chosen by measurement (`mine validate-estimates`: train on one converter's study labels, estimate the "
    "other's shares, compare with its human labels), not per table. Intervals are 95% percentile bootstrap "
    "intervals that resample the target issues, the classifier's training issues (hence its measured error "
    "rates) and, for probabilistic counts, each issue's category from its probabilities. Categories with fewer "
    "than 5 training issues are merged into 'Rare categories (merged)'. 'both' counts issues with human labels as "
    "labelled and estimates only the rest."
)


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(str(_TEMPLATES)), autoescape=select_autoescape(["html"]),
                       trim_blocks=False, lstrip_blocks=False)


SOURCES = {
    "gold": "human labels",
    "predicted": "estimated from the classifier for every issue",
    "both": "human labels where they exist, estimated from the classifier for the rest",
}


def _code_spans(text: str) -> Markup:
    """``text`` escaped, with `backticked` parts as <code> (the only markup the prose uses)."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unmatched backtick: show the text as it is
        return Markup(escape(text))
    return Markup("").join(escape(p) if i % 2 == 0 else Markup("<code>%s</code>") % p for i, p in enumerate(parts))


def _table(rep: Report, name: str, cb: Codebook) -> dict:
    """One table for the template: cross tables in the paper's pivoted layout (a header row of column
    groups, e.g. one group per symptom with a count per converter), the others one row per category."""
    df = display_frame(rep, name, cb)
    groups: list[dict] = []  # the top header row of a pivoted table; empty for a one-row header
    if isinstance(df.columns, pd.MultiIndex):
        for top, sub in df.columns:
            if sub and groups and groups[-1]["label"] == str(top) and groups[-1]["rowspan"] == 1:
                groups[-1]["span"] += 1
            else:
                groups.append({"label": str(top), "span": 1, "rowspan": 1 if sub else 2,
                               "key": top in ("Cause", "Stage", "Symptom")})
        header = [str(sub) for _, sub in df.columns if sub]
    else:
        header = [str(c) for c in df.columns]
    keys = sum(1 for c in (header if not groups else [g["label"] for g in groups])
               if c in ("Stage", "Symptom", "Cause", "Subtype", "Period"))
    # many converters: each interval under its count (the cell's CSS keeps the line break)
    wide = is_wide(df)
    values = [is_value_col(c[0] if isinstance(c, tuple) else c) for c in df.columns]
    rows = [[two_lines(v) if wide and is_value else str(v) for v, is_value in zip(rec, values)]
            for rec in df.itertuples(index=False)]
    return {"name": name, "title": TABLE_TITLES.get(name, name), "header": header, "groups": groups,
            "rows": rows, "nkeys": max(keys, 1), "wide": wide}


def render_html(
    rep: Report,
    *,
    trends: dict[str, list[dict]] | None = None,
    figures: dict | None = None,
    validation: dict | None = None,
    changes: list[str] | None = None,
    new_issues: list[dict] | None = None,
    title: str | None = None,
    cb: Codebook | None = None,
    sections: list[dict] | None = None,
) -> str:
    """The page as a string. ``figures``: ``{name: matplotlib Figure}``; ``validation``: the summary of
    :func:`pipeline.report.validate.validate_estimates`; ``changes``/``new_issues``: the nightly summary;
    ``sections``: further sections after the tables (e.g. the operator tables,
    :func:`pipeline.report.operators_render.html_section`)."""
    from pipeline.report.figures import png_bytes

    cb = cb or load_codebook()
    methods = sorted({r.get("method") for rows in rep.tables.values() for r in rows if r.get("method")})
    how = [HOW_GOLD] if "gold" in methods or rep.source == "gold" else []
    for m in methods:
        if m != "gold":
            how.append(HOW_ESTIMATED.format(method=m, method_name=METHOD_NAMES.get(m, m)))
    how = [_code_spans(h) for h in how]
    estimated = any(m != "gold" for m in methods)
    legend = ("Each cell: " + ("estimated number of issues (fractional: a sum of probabilities), " if estimated
                               else "number of issues, ") +
              "its share of the column's issues, and the share's 95% interval in brackets. "
              "Cross tables (cause by symptom or stage) show counts only.")
    trend_rep = rep.with_tables(trends or {}, notes=[])
    figs = []
    for name, fig in (figures or {}).items():
        data = png_bytes(fig)
        w = int(fig.get_size_inches()[0] * 110)
        figs.append({"name": name, "png": base64.b64encode(data).decode("ascii"), "width": w,
                     "caption": fig.axes[0].get_title() if fig.axes else name})
    val_rows = []
    if validation:
        chosen = validation.get("chosen_method")
        for m, err in sorted(validation.get("mean_abs_error_pp", {}).items(), key=lambda kv: kv[1]):
            cov = validation.get("coverage", {}).get(m)
            mark = " (used here)" if m == chosen else ""
            val_rows.append({"method": f"{m}: {METHOD_NAMES.get(m, m)}{mark}", "error": f"{err:.1f}",
                             "coverage": "" if cov is None else f"{cov:.0%}"})
    cols = ", ".join(f"{c} {rep.columns.get(c, '')}" for c in rep.converters)
    return _env().get_template("report.html").render(
        title=title or "ONNX converter failures: report",
        n=rep.n, columns_text=cols, source=rep.source, source_text=SOURCES.get(rep.source, rep.source), legend=legend,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        tables=[_table(rep, name, cb) for name in rep.tables],
        trend_tables=[_table(trend_rep, name, cb) for name in trend_rep.tables],
        figures=figs, how=how, notes=list(rep.notes), validation=val_rows,
        changes=changes or [], new_issues=new_issues or [], sections=sections or [],
    )


def write_html(path: Path | str, rep: Report, **kw) -> Path:
    """Write :func:`render_html` to ``path`` (UTF-8)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(rep, **kw), encoding="utf-8")
    return p
