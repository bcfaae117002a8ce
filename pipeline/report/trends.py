"""Stage, symptom and cause over time: tables per year or quarter of issue creation.

Rows follow the report contract with an extra ``period`` key (``"2021"`` or ``"2021Q3"``):
``{"category", "period", "counts": {converter, "total"}, "share": {...}, "ci": {...}, "method"}``.
Shares are within the period (and converter). Gold rows (human labels) carry Wilson intervals;
estimated rows carry the same corrected estimate and bootstrap interval as the main tables,
computed separately for each period. Issues without a creation date are left out (and counted
in the notes): the study's own issues have none offline.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import pandas as pd

from pipeline.codebook import load_codebook
from pipeline.report.estimate import (DEFAULT_BOOTSTRAP, DEFAULT_METHOD, StoreData, estimate_dimension,
                                      estimate_rows, wilson)
from pipeline.report.tables import FREQUENCIES, TOTAL, column_sizes, count_table


def period_of(created_at: pd.Series, freq: str) -> pd.Series:
    """``"YYYY"`` or ``"YYYYQn"`` of ISO timestamps; ``""`` where the date is missing or unreadable."""
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {FREQUENCIES}")
    ts = pd.to_datetime(created_at, errors="coerce", utc=True)
    out = ts.dt.year.astype("Int64").astype(str) if freq == "year" else ts.dt.tz_convert(None).dt.to_period("Q").astype(str)
    return out.where(ts.notna(), "").str.replace("<NA>", "", regex=False).replace("NaT", "")


def gold_trend_rows(issues: pd.DataFrame, dim: str, freq: str, converters: list[str]) -> list[dict]:
    """Counts and shares of human labels per period, with Wilson intervals."""
    cb = load_codebook()
    df = issues[issues[dim].ne("")].assign(period=lambda d: period_of(d["created_at"], freq))
    df = df[df["period"].ne("")]
    rows = []
    for period, sub in sorted(df.groupby("period"), key=lambda kv: kv[0]):
        sizes = column_sizes(sub, converters)
        for row in count_table(sub, dim, cb.ids(dim), converters):
            counts = row["counts"]
            rows.append({"category": row["category"], "period": period, "counts": counts, "share": row["share"],
                         "ci": {c: [round(x, 4) for x in wilson(counts[c], sizes[c])] for c in counts},
                         "method": "gold"})
    return rows


def estimated_trend_rows(data: StoreData, dim: str, freq: str, mode: str, converters: list[str], *,
                         method: str = DEFAULT_METHOD, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0) -> list[dict]:
    """Corrected estimates per period (``mode`` ``predicted`` or ``both``), one estimate per period."""
    periods = period_of(data.issues["created_at"], freq)
    rows = []
    for period in sorted(p for p in periods.unique() if p):
        est = estimate_dimension(data, dim, mode, subset=(periods == period).to_numpy(), method=method,
                                 bootstrap=bootstrap, seed=seed, total=TOTAL)
        for row in estimate_rows(est, [*converters, TOTAL]):
            rows.append({"category": row["category"], "period": period, **{k: v for k, v in row.items() if k != "category"}})
    return rows


def trend_tables(data: StoreData, mode: str = "gold", freqs: tuple[str, ...] = FREQUENCIES, *,
                 method: str = DEFAULT_METHOD, bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 dimensions: tuple[str, ...] = ("stage", "symptom", "cause")) -> tuple[dict[str, list[dict]], list[str]]:
    """``({"<dim>_by_<freq>": rows}, notes)`` over the store's filtered issues.

    ``gold``: labelled issues with a creation date; ``predicted``/``both``: every dated filtered issue.
    """
    issues = data.issues
    converters = sorted(issues["converter"].unique().tolist())
    dated = period_of(issues["created_at"], "year").ne("")
    notes = []
    if (~dated).any():
        notes.append(f"over time: {int((~dated).sum())} issue(s) without a creation date left out")
    tables: dict[str, list[dict]] = {}
    for dim in dimensions:
        if mode != "gold" and (data.evidence is None or dim not in data.evidence.calibrations):
            continue
        if mode == "gold" and not (issues[dim].ne("") & dated).any():
            continue
        for freq in freqs:
            if mode == "gold":
                rows = gold_trend_rows(issues, dim, freq, converters)
            else:
                rows = estimated_trend_rows(data, dim, freq, mode, converters, method=method,
                                            bootstrap=bootstrap, seed=seed)
            if rows:
                tables[f"{dim}_by_{freq}"] = rows
    if not tables:
        notes.append("over time: no dated issues in scope (the study's issues have no dates offline; crawl first)")
    return tables, notes


def only_converters(data: StoreData, names: Sequence[str]) -> StoreData:
    """``data`` restricted to the issues of the converters ``names`` (the classifier's target
    probabilities with them, row for row); the training issues stay as they are."""
    keep = data.issues["converter"].isin(list(names)).to_numpy()
    evidence = data.evidence
    if evidence is not None:
        kinds = evidence.target_kinds and [k for k, m in zip(evidence.target_kinds, keep) if m]
        evidence = replace(evidence, target={d: t[keep] for d, t in evidence.target.items()}, target_kinds=kinds)
    return replace(data, issues=data.issues[keep].reset_index(drop=True), evidence=evidence)


def store_converters(conn) -> list[str]:
    """The converters (sources) the store holds filtered issues of (what estimates cover)."""
    from pipeline.sample.filter import filtered_issues

    return sorted({r["source"] for r in filtered_issues(conn)})


def full_report(labels: pd.DataFrame, mode: str = "gold", conn=None, *, method: str = DEFAULT_METHOD,
                bootstrap: int = DEFAULT_BOOTSTRAP, over_time: bool = True, top_k: int = 5,
                seed: int = 0, data: StoreData | None = None, model_path=None, cache_dir=None,
                converters: Sequence[str] | None = None):
    """The report a command, the nightly run or the notebook shows: ``(report, over-time tables, data)``.

    ``gold``: the study's tables from ``labels`` with Wilson intervals (over time: labelled
    issues the store ``conn`` has dates for). ``predicted``/``both``: corrected estimates over
    the store's filtered issues (``conn`` required), over time per year and quarter, from the
    trained model (``model_path``, else the one the labels call current; see
    :func:`pipeline.classify.interface.choose_model`, which retrains into ``cache_dir`` when due).
    ``converters``: only these converters' columns, the total over them (a :class:`UserError`
    names a converter the labels or the store have no issues of, and lists the valid ones).
    """
    from pipeline.errors import UserError
    from pipeline.report.estimate import MODES, add_wilson, load_store_data, predicted_report
    from pipeline.report.tables import build_report, check_converters

    if mode not in MODES:
        raise UserError(f"--from {mode!r}: choose one of {', '.join(MODES)}")
    if mode != "gold" and conn is None:
        raise UserError(f"--from {mode} needs a store (--db) holding crawled issues")
    if converters:
        # checked before any training: a typo costs nothing
        if mode == "gold":
            converters = check_converters(converters, sorted(labels["converter"].unique()), "the label files")
            labels = labels[labels["converter"].isin(converters)].reset_index(drop=True)
        else:
            converters = check_converters(converters, store_converters(conn), "the store's filtered issues")
    if mode == "gold":
        rep = add_wilson(build_report(labels, top_k=top_k))
        if conn is None or not over_time:
            return rep, {}, data
        data = data or load_store_data(conn, labels, classify=False)
    else:
        data = data or load_store_data(conn, labels, model_path=model_path, cache_dir=cache_dir)
    if converters:
        data = only_converters(data, converters)
    if mode != "gold":
        rep = predicted_report(data, mode, method=method, bootstrap=bootstrap, seed=seed)
    trends: dict[str, list[dict]] = {}
    if over_time:
        # per-period intervals: fewer replicates (many periods), never more than asked for
        trends, notes = trend_tables(data, mode, method=method, bootstrap=min(bootstrap, max(200, bootstrap // 4)), seed=seed)
        rep.notes.extend(notes)
    return rep, trends, data
