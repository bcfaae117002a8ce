"""The study's tables computed from a label table: pure functions, no I/O.

A :class:`Report` holds named tables; each table is a list of rows
``{"category": id, "counts": {converter: n, ..., "total": n}, "share": {...}}`` with every
codebook category present (zero counts included). Cross tables add the second dimension's id
(e.g. ``"symptom"``) to each row. Renderers live in :mod:`pipeline.report.render`.

>>> from pipeline.label_files.files import read_labels
>>> rep = build_report(read_labels("labels/study.csv"))
>>> row = next(r for r in rep.tables["stage"] if r["category"] == "node_conversion")
>>> row["counts"], row["share"]["total"]
({'tf2onnx': 70, 'torch.onnx': 78, 'total': 148}, 0.74)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import pandas as pd

from pipeline.codebook import DIMENSIONS, SUBTYPE_DIMENSION, Codebook, load_codebook
from pipeline.errors import UserError
from pipeline.label_files.files import rated_dimensions

TOTAL = "total"
OTHER_CAUSES = "other_causes"
OTHER_SYMPTOMS = "other_symptoms"

# Titles and the paper's table numbers, in the order reports show them.
TABLE_TITLES = {
    "stage": "Failures by converter stage (Table 8)",
    "symptom": "Failures by symptom (Table 9)",
    "cause": "Failures by cause (Table 14, all categories)",
    "cause_binned": "Failures by cause, top 5 and the rest binned (Table 14)",
    "cause_subtype": "Cause subtypes (Table 14)",
    "cause_x_symptom": "Cause by symptom, top-5 causes, rare symptoms binned (Table 10)",
    "cause_x_stage": "Cause by stage",
}
FREQUENCIES = ("year", "quarter")
# the over-time tables (pipeline.report.trends)
TABLE_TITLES.update({f"{dim}_by_{freq}": f"Failures by {dim} per {freq} of issue creation"
                     for dim in ("stage", "symptom", "cause") for freq in FREQUENCIES})


@dataclass
class Report:
    """Tables over ``n`` labelled issues of ``converters``; ``notes`` explain binning and sources."""

    n: int
    converters: list[str]
    tables: dict[str, list[dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: str = "gold"
    columns: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The JSON contract: ``{"n", "converters", "tables": {name: [rows]}}`` (+ notes, source)."""
        return {"n": self.n, "converters": self.converters, "source": self.source,
                "columns": self.columns, "tables": self.tables, "notes": self.notes}

    def with_tables(self, tables: dict[str, list[dict]], notes: list[str] | None = None) -> "Report":
        """The same issues and columns with other ``tables`` (and ``notes``, by default these notes)."""
        return Report(self.n, self.converters, dict(tables), list(self.notes if notes is None else notes),
                      self.source, self.columns)


def check_converters(names: Sequence[str], present: Sequence[str], where: str) -> list[str]:
    """``names`` (``--converter``, in the order given, without repeats) if each is among the
    ``present`` converters; else a :class:`UserError` listing the valid names."""
    chosen = list(dict.fromkeys(names))
    unknown = [n for n in chosen if n not in present]
    if unknown:
        valid = ", ".join(sorted(present)) or "none"
        raise UserError(f"--converter {', '.join(unknown)}: no issues of {'it' if len(unknown) == 1 else 'them'} "
                        f"in {where}; valid: {valid}")
    return chosen


def column_sizes(df: pd.DataFrame, converters: list[str]) -> dict[str, int]:
    """Issues of ``df`` per converter and in total (:data:`TOTAL`): a table's columns and the shares' denominators."""
    return {c: int((df["converter"] == c).sum()) for c in converters} | {TOTAL: len(df)}


def _share(count: int, n: int) -> float:
    return round(count / n, 4) if n else 0.0


def _row(category: str, sub: pd.DataFrame, converters: list[str], sizes: dict[str, int], **extra) -> dict:
    counts = column_sizes(sub, converters)
    share = {k: _share(v, sizes[k]) for k, v in counts.items()}
    return {"category": category, **extra, "counts": counts, "share": share}


def count_table(df: pd.DataFrame, column: str, categories: list[str], converters: list[str]) -> list[dict]:
    """Counts and shares of ``column`` per converter and in total, one row per category."""
    sizes = column_sizes(df, converters)
    return [_row(cat, df[df[column] == cat], converters, sizes) for cat in categories]


def subtype_table(df: pd.DataFrame, cb: Codebook, converters: list[str]) -> list[dict]:
    """Subtypes of each cause that has them; shares are over all issues, ``share_of_cause`` over the cause."""
    sizes = column_sizes(df, converters)
    rows = []
    for cause in cb.ids("cause"):
        parent = df[df["cause"] == cause]
        for sub in cb.subtypes(cause):
            row = _row(sub, parent[parent[SUBTYPE_DIMENSION] == sub], converters, sizes, cause=cause)
            row["share_of_cause"] = _share(row["counts"][TOTAL], len(parent))
            rows.append(row)
        if cb.subtypes(cause):
            unspecified = parent[~parent[SUBTYPE_DIMENSION].isin(cb.subtypes(cause))]
            if len(unspecified):
                row = _row("unspecified", unspecified, converters, sizes, cause=cause)
                row["share_of_cause"] = _share(len(unspecified), len(parent))
                rows.append(row)
    return rows


CATCH_ALL_CAUSE = "others"


def top_causes(df: pd.DataFrame, cb: Codebook, k: int = 5) -> list[str]:
    """The ``k`` most frequent causes (ties broken by codebook order), as in the paper's tables.

    The catch-all ``others`` never ranks: the paper bins it with the rare causes (Table 14's
    "all others" row, 17 / 15 / 32, includes it).
    """
    order = {c: i for i, c in enumerate(cb.ids("cause")) if c != CATCH_ALL_CAUSE}
    counts = df["cause"].value_counts()
    ranked = sorted((c for c in counts.index if c in order), key=lambda c: (-counts[c], order[c]))
    return ranked[:k]


def binned_cause_table(df: pd.DataFrame, cb: Codebook, converters: list[str], k: int = 5) -> list[dict]:
    """Top-``k`` causes, then every other cause binned into ``other_causes``."""
    top = top_causes(df, cb, k)
    binned = df.assign(cause=df["cause"].where(df["cause"].isin(top), OTHER_CAUSES))
    return count_table(binned, "cause", [*top, OTHER_CAUSES], converters)


def rare_symptoms(df: pd.DataFrame, cb: Codebook, min_share: float) -> list[str]:
    """Symptoms whose total share is below ``min_share`` (binned in cross tables)."""
    counts = df["symptom"].value_counts()
    return [s for s in cb.ids("symptom") if counts.get(s, 0) / max(len(df), 1) < min_share]


def cross_table(df: pd.DataFrame, row_col: str, rows: list[str], col_col: str, cols: list[str],
                converters: list[str]) -> list[dict]:
    """One row per (row category, column category); shares are over each converter's issues."""
    sizes = column_sizes(df, converters)
    out = []
    for r in rows:
        sub = df[df[row_col] == r]
        for c in cols:
            out.append(_row(r, sub[sub[col_col] == c], converters, sizes, **{col_col: c}))
    return out


def build_report(
    df: pd.DataFrame,
    codebook: Codebook | None = None,
    *,
    top_k: int = 5,
    rare_symptom_share: float = 0.05,
) -> Report:
    """Every study table over a label table (as read by :func:`pipeline.label_files.files.read_labels`).

    Dimensions the labels do not rate are left out (and said so in ``notes``).
    """
    cb = codebook or load_codebook()
    df = df.copy()
    for col in [*DIMENSIONS, SUBTYPE_DIMENSION]:
        if col not in df.columns:
            df[col] = ""
        df[col] = df[col].fillna("").astype(str)
    converters = sorted(df["converter"].unique().tolist())
    rep = Report(n=len(df), converters=converters, columns=column_sizes(df, converters))
    rated = rated_dimensions(df)
    for dim in DIMENSIONS:
        if dim not in rated:
            rep.notes.append(f"{dim}: not rated in these labels")
            continue
        unrated = int(df[dim].eq("").sum())
        if unrated:
            rep.notes.append(f"{dim}: {unrated} issue(s) without a {dim} label count in no row")
        rep.tables[dim] = count_table(df, dim, cb.ids(dim), converters)
    if "cause" in rated:
        top = top_causes(df, cb, top_k)
        rep.tables["cause_binned"] = binned_cause_table(df, cb, converters, top_k)
        rep.tables["cause_subtype"] = subtype_table(df, cb, converters)
        rep.notes.append(f"cause_binned, cause_x_symptom: top-{top_k} causes {', '.join(top)}; the rest binned as {OTHER_CAUSES}")
        if "symptom" in rated:
            rare = rare_symptoms(df, cb, rare_symptom_share)
            kept = [s for s in cb.ids("symptom") if s not in rare]
            sym = df["symptom"].where(~df["symptom"].isin(rare), OTHER_SYMPTOMS)
            binned = df.assign(cause=df["cause"].where(df["cause"].isin(top), OTHER_CAUSES), symptom=sym)
            rep.tables["cause_x_symptom"] = cross_table(
                binned, "cause", [*top, OTHER_CAUSES], "symptom", [*kept, OTHER_SYMPTOMS], converters)
            rep.notes.append(
                f"cause_x_symptom: symptoms under {rare_symptom_share:.0%} of issues ({', '.join(rare) or 'none'}) "
                f"binned as {OTHER_SYMPTOMS}")
        if "stage" in rated:
            rep.tables["cause_x_stage"] = cross_table(df, "cause", cb.ids("cause"), "stage", cb.ids("stage"), converters)
    return rep
