r"""Render a :class:`~pipeline.report.tables.Report` as terminal tables, Markdown, CSV, LaTeX or JSON.

Cells read ``count (share%)`` in display formats; CSV keeps counts and shares in separate
numeric columns so spreadsheets and pandas can use them. Category ids become display names
from the codebook. Extra per-row keys (e.g. ``ci``) are rendered when present.

Many converters (six converters and the total are seven value columns) stay legible:

- terminal (:func:`print_report`): a table is printed whole on one line per row when it fits
  the console; else each cell's interval goes on a second line; else the value columns are
  split into blocks that fit, each repeating the row names (``Title (1/3)``). A method column
  holding one method is said once under the title. An 80-column terminal shows up to four
  converters per block (six: two blocks);
- LaTeX: with more than four value columns, ``table*`` (both columns of a two-column paper),
  ``\footnotesize`` and the interval under the count (``\shortstack``);
- HTML: the same interval-under-count cells, in a horizontally scrollable box;
- Markdown and CSV keep one line per row (they are pasted, not read in a terminal).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from pipeline.codebook import Codebook, load_codebook
from pipeline.report.tables import OTHER_CAUSES, OTHER_SYMPTOMS, TABLE_TITLES, TOTAL, Report

FORMATS = ("table", "markdown", "csv", "latex", "json", "html")
EXTENSIONS = {"markdown": "md", "csv": "csv", "latex": "tex", "json": "json", "table": "txt", "html": "html"}
_BINS = {OTHER_CAUSES: "Other causes (binned)", OTHER_SYMPTOMS: "Other symptoms (binned)",
         "unspecified": "Unspecified",
         # the classifier's bin of categories with too few training issues (predicted tables);
         # named apart from the codebook's own "Others"
         "other": "Rare categories (merged)"}
# the column dimension of cross tables (``cause_x_symptom``: one row per cause and symptom)
CROSS_KEYS = ("symptom", "stage")


def category_name(cb: Codebook, dimension: str | None, cat: str) -> str:
    """Display name of a category id, of the tables' bins, or of the classifier's merged ``other``."""
    if cat in _BINS:
        return _BINS[cat]
    return cb.display(dimension, cat) if dimension else cat


def _row_dimension(table: str) -> str:
    table = table.split("_by_")[0]  # over-time tables: "<dimension>_by_<year|quarter>"
    if table.startswith("cause"):
        return "cause_subtype" if table == "cause_subtype" else "cause"
    return table


def _pct(x: float) -> str:
    """Whole percent, half rounded up as the paper does (65 of 200 -> 33%); ``<1%`` for a small non-zero share."""
    pct = int(Decimal(str(100 * x)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return "<1%" if pct == 0 and x > 0 else f"{pct}%"


def _cell(row: dict, col: str) -> str:
    text = f"{row['counts'][col]:g} ({_pct(row['share'][col])})"
    ci = (row.get("ci") or {}).get(col)
    if ci:
        text += f" [{_pct(ci[0])}, {_pct(ci[1])}]"
    return text


def table_frame(rep: Report, name: str, cb: Codebook | None = None, numeric: bool = False) -> pd.DataFrame:
    """One table as a DataFrame: display names, then a column per converter and the total.

    ``numeric=True`` gives ``<col>_count`` / ``<col>_share`` (and ``_ci_low`` / ``_ci_high``) columns.
    """
    cb = cb or load_codebook()
    cols = [*rep.converters, TOTAL]
    records = []
    for row in rep.tables[name]:
        rec: dict[str, object] = {}
        if "period" in row:
            rec["Period"] = row["period"]
        if "cause" in row and name == "cause_subtype":
            rec["Cause"] = category_name(cb, "cause", row["cause"])
            rec["Subtype"] = category_name(cb, "cause_subtype", row["category"])
        else:
            rec[_label(name)] = category_name(cb, _row_dimension(name), row["category"])
        for key in ("symptom", "stage"):
            if key in row:
                rec[key.title()] = category_name(cb, key, row[key])
        for c in cols:
            head = "Total" if c == TOTAL else c
            if numeric:
                rec[f"{head}_count"] = row["counts"][c]
                rec[f"{head}_share"] = row["share"][c]
                ci = (row.get("ci") or {}).get(c)
                if ci:
                    rec[f"{head}_ci_low"], rec[f"{head}_ci_high"] = ci
            else:
                rec[head] = _cell(row, c)
        if "method" in row:
            rec["Method"] = row["method"]
        records.append(rec)
    return pd.DataFrame(records)


def tidy_frame(rep: Report, tables: list[str] | None = None) -> pd.DataFrame:
    """Every table in one long table (one row per table, category and column), for pandas or R.

    Columns: ``table, category, cause, symptom, stage, period, column, count, share, ci_low,
    ci_high, method``; ids, not display names; empty where a table has no such key.
    """
    recs = []
    for name in tables or list(rep.tables):
        for row in rep.tables[name]:
            for col, count in row["counts"].items():
                ci = (row.get("ci") or {}).get(col) or (None, None)
                recs.append({"table": name, "category": row["category"], "cause": row.get("cause", ""),
                             "symptom": row.get("symptom", ""), "stage": row.get("stage", ""),
                             "period": row.get("period", ""), "column": col, "count": count,
                             "share": row["share"][col], "ci_low": ci[0], "ci_high": ci[1],
                             "method": row.get("method", "")})
    return pd.DataFrame(recs)


def cross_key(rep: Report, name: str) -> str | None:
    """The column dimension of a cross table (``symptom`` or ``stage``), else ``None``."""
    rows = rep.tables.get(name) or []
    return next((k for k in CROSS_KEYS if rows and k in rows[0]), None)


def cross_frame(rep: Report, name: str, cb: Codebook | None = None) -> pd.DataFrame:
    """A cross table laid out as the paper's Table 10: one row per cause, a column group per
    symptom (or stage) with a count per converter (the total alone when that would be more
    than ten columns), then the row's total.

    Columns are a two-level index (group, converter), renderers flatten or span them; one
    level when only totals are shown.
    """
    cb = cb or load_codebook()
    key = cross_key(rep, name)
    if key is None:
        raise ValueError(f"{name} is not a cross table")
    rows = rep.tables[name]
    row_cats = list(dict.fromkeys(r["category"] for r in rows))
    col_cats = list(dict.fromkeys(r[key] for r in rows))
    cell = {(r["category"], r[key]): r["counts"] for r in rows}
    # a count per converter fits a few column groups (Table 10); wider tables show totals
    subs = rep.converters if len(col_cats) * len(rep.converters) <= 10 else [TOTAL]
    records, index = [], []
    for rc in row_cats:
        rec: dict[tuple[str, str], str] = {}
        for cc in col_cats:
            for conv in subs:
                rec[(category_name(cb, key, cc), "" if conv == TOTAL else conv)] = f"{cell[(rc, cc)][conv]:g}"
        rec[("Total", "")] = f"{sum(cell[(rc, cc)][TOTAL] for cc in col_cats):g}"
        records.append(rec)
        index.append(category_name(cb, _row_dimension(name), rc))
    df = pd.DataFrame(records)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    df.insert(0, ("Cause", ""), index)
    return df if subs is rep.converters else df.droplevel(1, axis=1)


def _flat(df: pd.DataFrame, sep: str = ": ") -> pd.DataFrame:
    """Two-level columns joined into one header (``Crash: tf2onnx``)."""
    if not isinstance(df.columns, pd.MultiIndex):
        return df
    out = df.copy()
    out.columns = [a if not b else f"{a}{sep}{b}" for a, b in df.columns]
    return out


def display_frame(rep: Report, name: str, cb: Codebook | None = None) -> pd.DataFrame:
    """The frame display formats show: the paper's pivoted layout for cross tables, else :func:`table_frame`."""
    return cross_frame(rep, name, cb) if cross_key(rep, name) else table_frame(rep, name, cb)


def _label(name: str) -> str:
    return {"stage": "Stage", "symptom": "Symptom"}.get(name.split("_by_")[0], "Cause")


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(df: pd.DataFrame) -> str:
    df = _flat(df)
    head = "| " + " | ".join(_md_escape(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---:" if is_value_col(c) else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(_md_escape(v) for v in rec) + " |" for rec in df.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def _latex_escape(s: str) -> str:
    out = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}"),
                 ("<", r"\textless{}"), (">", r"\textgreater{}")):
        out = out.replace(a, b) if a != "\\" else out.replace(a, "\x00")
    return out.replace("\x00", r"\textbackslash{}")


# more value columns than this (converters + total) make a wide table: see the module docstring
WIDE_VALUE_COLUMNS = 4


def _n_values(df: pd.DataFrame) -> int:
    return sum(1 for c in df.columns if is_value_col(c[0] if isinstance(c, tuple) else c))


def _has_intervals(df: pd.DataFrame) -> bool:
    """Whether cells carry intervals (cross tables hold bare counts: they stay narrow)."""
    return any(" [" in str(v) for c in df.columns if is_value_col(c[0] if isinstance(c, tuple) else c) for v in df[c])


def is_wide(df: pd.DataFrame) -> bool:
    """A display frame too wide for one line per cell in print (LaTeX, HTML): more than
    :data:`WIDE_VALUE_COLUMNS` value columns with intervals."""
    return _n_values(df) > WIDE_VALUE_COLUMNS and _has_intervals(df)


def _latex_cell(value: object, stacked: bool) -> str:
    text = _latex_escape(value)
    head, sep, interval = str(value).partition(" [")
    if not stacked or not sep:
        return text
    # braces keep "\\[" from reading the interval as the optional argument of \\
    return rf"\shortstack[r]{{{_latex_escape(head)}\\{{{_latex_escape('[' + interval)}}}}}"


def to_latex(df: pd.DataFrame, caption: str, label: str) -> str:
    """A booktabs table (``\\usepackage{booktabs}``), every cell escaped; two-level columns span groups.

    More than :data:`WIDE_VALUE_COLUMNS` value columns: a ``table*`` in ``\\footnotesize`` with each
    interval under its count."""
    top = [c[0] if isinstance(c, tuple) else c for c in df.columns]
    spec = "".join("r" if is_value_col(c) else "l" for c in top)  # per column, in column order
    wide = is_wide(df)
    env = "table*" if wide else "table"
    lines = [rf"\begin{{{env}}}[t]", r"\centering", *([r"\footnotesize", r"\setlength{\tabcolsep}{4pt}"] if wide else []),
             rf"\caption{{{_latex_escape(caption)}}}",
             rf"\label{{tab:{label}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule"]
    if isinstance(df.columns, pd.MultiIndex):
        heads, rules, col = [], [], 1
        for group in dict.fromkeys(top):
            width = top.count(group)
            heads.append(rf"\multicolumn{{{width}}}{{c}}{{{_latex_escape(group)}}}" if width > 1 else _latex_escape(group))
            if width > 1:
                rules.append(rf"\cmidrule(lr){{{col}-{col + width - 1}}}")
            col += width
        lines += [" & ".join(heads) + r" \\", " ".join(rules),
                  " & ".join(_latex_escape(c[1]) for c in df.columns) + r" \\", r"\midrule"]
    else:
        lines += [" & ".join(_latex_escape(c) for c in df.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_cell(v, wide and is_value_col(c)) for v, c in zip(rec, top)) + r" \\"
              for rec in df.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\end{{{env}}}"]
    return "\n".join(lines)


def is_value_col(c: str) -> bool:
    """Whether a display column holds values (converters, total) rather than row names or the method."""
    return c not in ("Stage", "Symptom", "Cause", "Subtype", "Method", "Period")


def render(rep: Report, fmt: str, cb: Codebook | None = None, tables: list[str] | None = None) -> str:
    """The whole report (or the named ``tables``) as text in ``fmt`` (not ``table``: see :func:`print_report`).

    ``csv`` is one long table (:func:`tidy_frame`); ``--out`` writes a wide CSV per table.
    """
    cb = cb or load_codebook()
    names = list(tables or rep.tables)
    if fmt == "html":
        from pipeline.report.html import render_html

        return render_html(rep.with_tables({k: v for k, v in rep.tables.items() if k in names}), cb=cb)
    if fmt == "json":
        d = rep.to_dict()
        d["tables"] = {k: v for k, v in d["tables"].items() if k in names}
        return json.dumps(d, indent=2)
    if fmt == "csv":
        return tidy_frame(rep, names).to_csv(index=False, lineterminator="\n")
    if fmt == "markdown":
        parts = [f"### {TABLE_TITLES.get(n, n)}\n\n{to_markdown(display_frame(rep, n, cb))}\n" for n in names]
        if rep.notes:
            parts.append("Notes:\n\n" + "\n".join(f"- {_md_escape(n)}" for n in rep.notes) + "\n")
        return "\n".join(parts)
    if fmt == "latex":
        return "\n".join(to_latex(display_frame(rep, n, cb), TABLE_TITLES.get(n, n), n) + "\n" for n in names)
    raise ValueError(f"unknown format {fmt!r}")


def two_lines(value: object) -> str:
    """``count (share) [low, high]`` with the interval on a second line."""
    return str(value).replace(" [", "\n[", 1)


def _width(texts) -> int:
    return max((len(line) for t in texts for line in str(t).split("\n")), default=0)


def terminal_tables(df: pd.DataFrame, title: str, width: int, is_value: Callable[[str], bool] | None = None) -> list[Table]:
    """One display frame as rich tables that fit ``width`` columns (see the module docstring):
    whole, else with intervals on a second line, else split into blocks of value columns.
    ``is_value(column)`` tells value columns from row names (default :func:`is_value_col`)."""
    valued = is_value or is_value_col
    df = _flat(df, sep="\n")
    caption = None
    if "Method" in df.columns and df["Method"].nunique() == 1:
        caption = f"method: {df['Method'].iloc[0]}"
        df = df.drop(columns="Method")
    keys = [c for c in df.columns if not valued(c)]
    values = [c for c in df.columns if valued(c)]

    def cells(c, split: bool) -> list[str]:
        return [two_lines(v) if split else str(v) for v in df[c]]

    def need(cols, split: bool) -> int:  # a rich table: borders, and one space of padding each side
        return 1 + sum(_width([c, *cells(c, split)]) + 3 for c in cols)

    # intervals go on a second line only where there are intervals and one line is too wide
    split = need(keys + values, False) > width and _has_intervals(df)
    blocks = [values]
    if need(keys + values, split) > width:
        blocks, cur = [], []
        for c in values:
            if cur and need(keys + cur + [c], split) > width:
                blocks.append(cur)
                cur = []
            cur.append(c)
        blocks.append(cur)
        # as many blocks, evened out when that still fits (3 + 2 + 2 reads better than 3 + 3 + 1)
        size, extra = divmod(len(values), len(blocks))
        ends = [sum(size + (j < extra) for j in range(i + 1)) for i in range(len(blocks))]
        even = [values[a:b] for a, b in zip([0, *ends[:-1]], ends)]
        if all(need(keys + b, split) <= width for b in even):
            blocks = even
    out = []
    for i, block in enumerate(blocks, 1):
        head = title if len(blocks) == 1 else f"{title} ({i}/{len(blocks)})"
        t = Table(title=head, title_justify="left", caption=caption, caption_justify="left", show_lines=split,
                  min_width=min(width, len(head)))  # the title on one line, even above a narrow block
        for c in keys + block:
            t.add_column(str(c), justify="right" if valued(c) else "left", no_wrap=True)
        for row in zip(*(cells(c, split and valued(c)) for c in keys + block)):
            t.add_row(*row)
        out.append(t)
    return out


def print_report(rep: Report, console: Console | None = None, cb: Codebook | None = None,
                 tables: list[str] | None = None) -> None:
    """Rich tables on the terminal, one per study table (in blocks when wider than the console), then the notes."""
    cb = cb or load_codebook()
    console = console or Console()
    head = f"{rep.n} issues: " + ", ".join(f"{c} {rep.columns.get(c, '')}" for c in rep.converters)
    console.print(f"[bold]{head}[/] (source: {rep.source})", highlight=False)
    for name in tables or list(rep.tables):
        for t in terminal_tables(display_frame(rep, name, cb), TABLE_TITLES.get(name, name), console.width):
            console.print(t)
    for n in rep.notes:
        console.print(f"[dim]note: {n}[/]", highlight=False)


def write_all(rep: Report, out_dir: Path | str, cb: Codebook | None = None) -> list[Path]:
    """Every table in every format under ``out_dir``: ``<table>.{md,csv,tex,txt}`` and ``report.json``."""
    cb = cb or load_codebook()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in rep.tables:
        frame = display_frame(rep, name, cb)
        title = TABLE_TITLES.get(name, name)
        files = {
            "md": f"### {title}\n\n{to_markdown(frame)}\n",
            "csv": table_frame(rep, name, cb, numeric=True).to_csv(index=False, lineterminator="\n"),
            "tex": to_latex(frame, title, name) + "\n",
        }
        buf = Console(record=True, width=160, file=io.StringIO())
        print_report(rep.with_tables({name: rep.tables[name]}, notes=[]), buf, cb)
        files["txt"] = buf.export_text()
        for ext, text in files.items():
            p = out / f"{name}.{ext}"
            p.write_text(text, encoding="utf-8")
            written.append(p)
    p = out / "report.json"
    p.write_text(render(rep, "json", cb) + "\n", encoding="utf-8")
    written.append(p)
    return written
