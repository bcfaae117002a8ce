"""Operator-level failure tables: which operators fail, at which stage, with which symptom, together.

Built from the store's filtered issues (:func:`pipeline.report.estimate.load_store_data`) and the
operators each names (:mod:`pipeline.operators.store`). Rows follow the report contract
(``category``, ``counts`` per converter and ``total``, ``share``, ``ci``, ``method``); an issue
naming several operators counts in the row of each.

- ``operators_by_converter``: issues naming each operator (top N; the rest binned), per converter.
- ``operator_x_stage`` / ``operator_x_symptom``: stage / symptom of the issues naming each top
  operator. ``gold``: human labels of the labelled issues; ``both``: human labels where they
  exist, the classifier's corrected estimates elsewhere (:func:`estimate_dimension` with
  ``subset`` = the issues naming the operator); symptoms under 5% binned as the paper bins them.
- ``operator_wrong_model``: the wrong-model share of each operator named by at least
  ``min_count`` issues in scope, highest first (Wilson 95% intervals for labels, bootstrap for
  estimates).
- ``operator_pairs``: operator pairs named together in wrong-model issues more often than chance:
  lift = n(a, b) * N / (n(a) * n(b)) over the N wrong-model issues (estimated counts in ``both``).
- ``operators_by_year``: issues naming each top operator per year of creation, with the first year.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import combinations
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from pipeline.codebook import load_codebook
from pipeline.report.estimate import (DEFAULT_BOOTSTRAP, DEFAULT_METHOD, METHOD_NAMES, StoreData, estimate_dimension,
                                      wilson)
from pipeline.report.tables import OTHER_SYMPTOMS, TOTAL, Report, column_sizes

OTHER_OPERATORS = "other_operators"
NO_OPERATOR = "no_operator"
WRONG_MODEL = "wrong_model"
OPERATOR_TITLES = {
    "operators_by_converter": "Issues naming each operator, per converter",
    "operator_x_stage": "Operator by stage (top operators, the rest binned)",
    "operator_x_symptom": "Operator by symptom (top operators, rare symptoms binned)",
    "operator_wrong_model": "Operators with the highest wrong-model share",
    "operator_pairs": "Operator pairs named together in wrong-model issues (lift over chance)",
    "operators_by_year": "Issues naming each top operator per year of creation",
}
BIN_NAMES = {OTHER_OPERATORS: "Other operators (binned)", NO_OPERATOR: "No operator named"}


def _ops_column(data: StoreData, ops_by_url: Mapping[str, Sequence]) -> pd.Series:
    return data.issues["url"].map(lambda u: sorted({str(o) for o in ops_by_url.get(u, ())}))


def top_operators(named: pd.Series, n: int) -> list[str]:
    """The ``n`` operators named by most issues (ties by name)."""
    counts = Counter(op for ops in named for op in ops)
    return [op for op, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def _count_row(category: str, mask: np.ndarray, issues: pd.DataFrame, converters: list[str],
               sizes: dict[str, int], method: str = "count", **extra) -> dict:
    sub = issues[mask]
    counts = column_sizes(sub, converters)
    return {"category": category, **extra, "counts": counts,
            "share": {c: round(v / sizes[c], 4) if sizes[c] else 0.0 for c, v in counts.items()}, "method": method}


def by_converter_table(issues: pd.DataFrame, named: pd.Series, top: list[str], converters: list[str]) -> list[dict]:
    sizes = column_sizes(issues, converters)
    rows = [_count_row(op, named.map(lambda ops, op=op: op in ops).to_numpy(), issues, converters, sizes) for op in top]
    rest = named.map(lambda ops: any(o not in top for o in ops)).to_numpy()
    rows.append(_count_row(OTHER_OPERATORS, rest, issues, converters, sizes))
    rows.append(_count_row(NO_OPERATOR, named.map(len).eq(0).to_numpy(), issues, converters, sizes))
    return rows


def _gold_counts(issues: pd.DataFrame, mask: np.ndarray, dim: str, cats: list[str], converters: list[str]) -> dict[str, dict[str, float]]:
    """``{category: {converter: n, total: n}}`` of the human labels of the issues in ``mask``."""
    sub = issues[mask & issues[dim].ne("").to_numpy()]
    return {c: column_sizes(sub[sub[dim] == c], converters) for c in cats}


def _estimated_counts(data: StoreData, mask: np.ndarray, dim: str, mode: str, converters: list[str], *,
                      method: str, bootstrap: int, seed: int):
    """Corrected estimates of ``dim`` over the issues in ``mask``: ``({category: {col: n}}, {category: {col: [lo, hi]}})``."""
    est = estimate_dimension(data, dim, mode, subset=mask, method=method, bootstrap=bootstrap, seed=seed, total=TOTAL)
    counts, cis = {}, {}
    for j, cat in enumerate(est.classes):
        counts[cat] = {c: round(float(est.groups[c].counts[j]), 1) if c in est.groups else 0.0 for c in [*converters, TOTAL]}
        cis[cat] = {c: [round(float(est.groups[c].low[j]), 4), round(float(est.groups[c].high[j]), 4)]
                    if c in est.groups else [0.0, 0.0] for c in [*converters, TOTAL]}
    return counts, cis


class _Counts:
    """Per operator: counts of one dimension's categories, from labels or estimates."""

    def __init__(self, data: StoreData, mode: str, converters: list[str], *, method: str, bootstrap: int, seed: int):
        self.data, self.mode, self.converters = data, mode, converters
        self.method, self.bootstrap, self.seed = method, bootstrap, seed
        self.cache: dict[tuple, tuple] = {}

    def categories(self, dim: str) -> list[str]:
        ids = load_codebook().ids(dim)
        if self.mode == "gold":
            return ids
        classes = self.data.evidence.calibrations[dim].classes
        order = {c: i for i, c in enumerate(ids)}
        return sorted(classes, key=lambda c: order.get(c, len(order)))

    def get(self, key: str, mask: np.ndarray, dim: str, bootstrap: int | None = None):
        k = (key, dim, bootstrap)
        if k not in self.cache:
            if self.mode == "gold":
                self.cache[k] = (_gold_counts(self.data.issues, mask, dim, self.categories(dim), self.converters), None)
            else:
                self.cache[k] = _estimated_counts(self.data, mask, dim, self.mode, self.converters, method=self.method,
                                                  bootstrap=self.bootstrap if bootstrap is None else bootstrap, seed=self.seed)
        return self.cache[k]

    @property
    def row_method(self) -> str:
        return "gold" if self.mode == "gold" else self.method


def cross_rows(counter: _Counts, masks: dict[str, np.ndarray], dim: str, cats: list[str],
               binned: dict[str, str] | None = None) -> list[dict]:
    """One row per (operator, category of ``dim``); ``binned`` maps categories into a bin."""
    rows = []
    for op, mask in masks.items():
        counts, _ = counter.get(op, mask, dim)
        merged: dict[str, dict[str, float]] = {c: dict.fromkeys([*counter.converters, TOTAL], 0.0) for c in cats}
        for cat, cols in counts.items():
            target = (binned or {}).get(cat, cat)
            if target in merged:
                for col, v in cols.items():
                    merged[target][col] += v
        n = {col: sum(merged[c][col] for c in cats) for col in [*counter.converters, TOTAL]}
        for cat in cats:
            cnt = {col: round(v, 1) for col, v in merged[cat].items()}
            rows.append({"category": op, dim: cat, "counts": cnt,
                         "share": {col: round(v / n[col], 4) if n[col] else 0.0 for col, v in cnt.items()},
                         "method": counter.row_method})
    return rows


def wrong_model_rows(counter: _Counts, masks: dict[str, np.ndarray], issues: pd.DataFrame, min_count: int) -> list[dict]:
    """Wrong-model share per operator with at least ``min_count`` issues in scope, highest first."""
    rows = []
    for op, mask in masks.items():
        counts, cis = counter.get(op, mask, "symptom")
        n = {col: sum(counts[c][col] for c in counts) for col in [*counter.converters, TOTAL]}
        if n[TOTAL] < min_count or WRONG_MODEL not in counts:
            continue
        wm = counts[WRONG_MODEL]
        share = {col: round(wm[col] / n[col], 4) if n[col] else 0.0 for col in n}
        ci = cis[WRONG_MODEL] if cis else {col: [round(x, 4) for x in wilson(wm[col], n[col])] for col in n}
        rows.append({"category": op, "counts": {c: round(v, 1) for c, v in wm.items()}, "share": share, "ci": ci,
                     "n": {c: round(v, 1) for c, v in n.items()}, "method": counter.row_method})
    return sorted(rows, key=lambda r: (-r["share"][TOTAL], -r["n"][TOTAL], r["category"]))


def _membership(named: pd.Series, ops) -> dict[str, np.ndarray]:
    """Per operator of ``ops``, which issues name it: one pass over the issues (a scan per
    operator, or per pair, was quadratic: 100 million lookups at 10,000 issues)."""
    rows: dict[str, list[int]] = {op: [] for op in ops}
    for i, names in enumerate(named):
        for op in names:
            if op in rows:
                rows[op].append(i)
    out = {}
    for op, idx in rows.items():
        m = np.zeros(len(named), bool)
        m[idx] = True
        out[op] = m
    return out


def pair_rows(counter: _Counts, named: pd.Series, min_pair: int, max_pairs: int = 20) -> list[dict]:
    """Pairs named together by at least ``min_pair`` issues, with their wrong-model lift (highest first)."""
    together = Counter(p for ops in named for p in combinations(sorted(ops), 2))
    pairs = [p for p, k in together.items() if k >= min_pair]
    if not pairs:
        return []
    n_all = len(named)
    everything = np.ones(n_all, bool)
    wm_total = counter.get("*", everything, "symptom", bootstrap=0)[0].get(WRONG_MODEL, {}).get(TOTAL, 0.0)

    def wm(op_key: str, mask: np.ndarray) -> float:
        counts = counter.get(op_key, mask, "symptom", bootstrap=0)[0]
        return float(counts.get(WRONG_MODEL, {}).get(TOTAL, 0.0))

    rows = []
    masks = _membership(named, {x for p in pairs for x in p})
    for a, b in pairs:
        ma, mb = masks[a], masks[b]
        n_a, n_b, n_ab = wm(f"{a}#0", ma), wm(f"{b}#0", mb), wm(f"{a}&{b}", ma & mb)
        lift = n_ab * wm_total / (n_a * n_b) if n_a and n_b else 0.0
        if n_ab <= 0 or lift <= 1.0:
            continue
        counts = {"together": round(n_ab, 1), "first": round(n_a, 1), "second": round(n_b, 1),
                  "wrong_model": round(wm_total, 1)}
        rows.append({"category": f"{a} + {b}", "pair": [a, b], "counts": counts,
                     "share": {k: round(v / wm_total, 4) if wm_total else 0.0 for k, v in counts.items()},
                     "lift": round(lift, 2), "issues_together": int(together[(a, b)]), "method": counter.row_method})
    return sorted(rows, key=lambda r: (-r["lift"], -r["counts"]["together"], r["category"]))[:max_pairs]


def year_rows(issues: pd.DataFrame, named: pd.Series, top: list[str], converters: list[str]) -> list[dict]:
    from pipeline.report.trends import period_of

    years = period_of(issues["created_at"], "year")
    rows = []
    for op in top:
        mask = named.map(lambda ops, op=op: op in ops) & years.ne("")
        first = min(years[mask]) if mask.any() else ""
        for year in sorted(y for y in years[mask].unique()):
            in_year = (years == year).to_numpy()
            sizes = column_sizes(issues[in_year], converters)
            rows.append(_count_row(op, (mask & (years == year)).to_numpy(), issues, converters, sizes,
                                   period=year, first_year=first))
    return rows


def operator_report(
    data: StoreData,
    ops_by_url: Mapping[str, Sequence],
    mode: str = "gold",
    *,
    top_n: int = 10,
    min_count: int = 3,
    min_pair: int = 2,
    rare_symptom_share: float = 0.05,
    method: str = DEFAULT_METHOD,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
) -> Report:
    """Every operator table over the store's filtered issues (``gold``: the labelled ones; ``both``:
    all, labels where they exist and the classifier's corrected estimates elsewhere)."""
    if mode not in ("gold", "both", "predicted"):
        raise ValueError(f"mode must be gold, both or predicted, got {mode!r}")
    issues_all = data.issues.reset_index(drop=True)
    labelled = issues_all[["stage", "symptom"]].ne("").any(axis=1).to_numpy()
    converters = sorted(issues_all["converter"].unique().tolist())
    named_all = _ops_column(StoreData(issues_all, data.labels), ops_by_url)
    scope = labelled if mode == "gold" else np.ones(len(issues_all), bool)
    issues, named = issues_all[scope].reset_index(drop=True), named_all[scope].reset_index(drop=True)
    scoped = StoreData(issues, data.labels, data.evidence, data.notes)
    if data.evidence is not None and mode != "gold":
        # the classifier's probabilities (and text kinds) of the issues in scope, in the same order
        ev = data.evidence
        kinds = np.asarray(ev.target_kinds or ["full"] * len(issues_all), dtype=object)[scope].tolist()
        scoped.evidence = replace(ev, target={d: t[scope] for d, t in ev.target.items()}, target_kinds=kinds)
    rep = Report(n=len(issues), converters=converters, source=mode, columns=column_sizes(issues, converters))
    top = top_operators(named, top_n)
    rep.tables["operators_by_converter"] = by_converter_table(issues, named, top, converters)
    counter = _Counts(scoped, mode, converters, method=method, bootstrap=bootstrap, seed=seed)
    masks = {op: named.map(lambda ops, op=op: op in ops).to_numpy() for op in top}
    other = named.map(lambda ops: any(o not in top for o in ops)).to_numpy()
    if other.any():
        masks[OTHER_OPERATORS] = other
    masks = {k: m for k, m in masks.items() if m.any()}
    if masks and (mode != "gold" or labelled.any()):
        rep.tables["operator_x_stage"] = cross_rows(counter, masks, "stage", counter.categories("stage"))
        sym = counter.categories("symptom")
        overall, _ = counter.get("*", np.ones(len(issues), bool), "symptom", bootstrap=0)
        n_all = sum(v[TOTAL] for v in overall.values()) or 1
        rare = [s for s in sym if overall.get(s, {}).get(TOTAL, 0) / n_all < rare_symptom_share]
        kept = [s for s in sym if s not in rare] + ([OTHER_SYMPTOMS] if rare else [])
        rep.tables["operator_x_symptom"] = cross_rows(counter, masks, "symptom", kept, {s: OTHER_SYMPTOMS for s in rare})
        rep.notes.append(f"operator_x_symptom: symptoms under {rare_symptom_share:.0%} of the issues in scope "
                         f"({', '.join(rare) or 'none'}) binned as {OTHER_SYMPTOMS}")
        all_named = {op for ops in named for op in ops}
        every = dict(sorted(_membership(named, all_named).items()))
        candidates = {op: m for op, m in every.items() if m.sum() >= min_count}
        rep.tables["operator_wrong_model"] = wrong_model_rows(counter, candidates, issues, min_count)
        rep.tables["operator_pairs"] = pair_rows(counter, named, min_pair)
    rep.tables["operators_by_year"] = year_rows(issues, named, top, converters)
    n_named = int(named.map(len).gt(0).sum())
    rep.notes.append(f"operators: {n_named} of {len(issues)} issues name at least one operator "
                     f"({len({o for ops in named for o in ops})} distinct); an issue naming several counts in each row; "
                     f"top {top_n} operators shown, the rest binned as {OTHER_OPERATORS}")
    how = {"gold": f"gold: human labels of the {len(issues)} labelled issues in the store, Wilson 95% intervals",
           "both": f"both: human labels where they exist, {METHOD_NAMES.get(method, method)} ({method}) elsewhere, "
                   f"95% bootstrap intervals ({bootstrap} replicates)",
           "predicted": f"predicted: {METHOD_NAMES.get(method, method)} ({method}) for every issue"}[mode]
    rep.notes.append(f"stage, symptom, wrong-model share and pairs: {how}; counts of issues naming an operator are exact (method 'count')")
    rep.notes.append(f"operator_wrong_model: operators named by at least {min_count} issues in scope; "
                     f"operator_pairs: pairs named together by at least {min_pair} issues, lift > 1 only "
                     "(point estimates, no intervals)")
    return rep


def gold_issues(conn, labels: pd.DataFrame) -> pd.DataFrame:
    """The labelled issues as :class:`StoreData` issues (``url, converter, created_at, title`` + labels),
    whether or not they were crawled: the study's issues are known by URL and title only."""
    dates = {r[0]: r[1] for r in conn.execute("SELECT url, created_at FROM issues")}
    df = pd.DataFrame({"url": labels["url"], "converter": labels["converter"],
                       "created_at": labels["url"].map(dates).fillna(""), "title": ""})
    for dim in ("stage", "symptom", "cause"):
        df[dim] = labels[dim].fillna("").astype(str).to_numpy() if dim in labels.columns else ""
    return df.reset_index(drop=True)


def store_operator_report(conn, labels: pd.DataFrame, mode: str = "gold", *, cache_dir=None, progress: bool = False,
                          data: StoreData | None = None, **kw) -> Report:
    """:func:`operator_report` over a store: operators refreshed first (only changed issues are
    extracted again); ``gold`` covers every labelled issue the store has any text (or title) for,
    ``both``/``predicted`` every filtered issue (:func:`pipeline.report.estimate.load_store_data`, or
    ``data`` when the caller has loaded it already)."""
    from pipeline.operators.store import operators_by_url, refresh_operators
    from pipeline.report.estimate import load_store_data

    refresh_operators(conn, progress=progress)
    ops = operators_by_url(conn)
    if mode == "gold":
        data = StoreData(gold_issues(conn, labels), labels)
        missing = int((~data.issues["url"].isin(ops)).sum())
    else:
        data = data if data is not None and data.evidence is not None else load_store_data(conn, labels, cache_dir=cache_dir)
        missing = int((~data.issues["url"].isin(ops)).sum())
    rep = operator_report(data, ops, mode, **kw)
    if missing:
        rep.notes.append(f"operators: {missing} issue(s) without any text in the store (not even a title) name none here")
    return rep
