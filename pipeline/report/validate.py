"""Check the corrected prevalence estimates against known answers (``mine validate-estimates``).

The study labels two converters. Train the classifier on one converter's labelled issues,
estimate the other converter's stage and symptom shares from the classifier alone, and compare
with that converter's human labels (the gold shares); then the reverse. For every share this
gives the absolute error of each estimation method (plain classify-and-count included) in
percentage points and whether the gold share lies inside the 95% bootstrap interval.

Only titles are available offline for the study issues, so both training and target texts are
titles (the same text kind on both sides, as the correction assumes).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.report.estimate import DEFAULT_BOOTSTRAP, DEFAULT_METHOD, METHODS, classifier_evidence, estimate_groups

VALIDATE_DIMENSIONS = ("stage", "symptom")
KEY_SHARES = (("stage", "node_conversion"), ("symptom", "wrong_model"))


def study_titles(conn: sqlite3.Connection | None = None, paper_dir: Path | str | None = None) -> dict[str, str]:
    """Titles of the study's issues: from the store's ``issue_titles`` (``mine import-study --db``),
    else read from the study's spreadsheet in ``paper_dir`` (default ``../shared/paper``)."""
    titles: dict[str, str] = {}
    if conn is not None:
        from pipeline.classify.titles import titles_for

        titles = titles_for(conn)
    if titles:
        return titles
    from pipeline.label_files.study_import import import_study
    from pipeline.paths import shared_dir

    paper = Path(paper_dir) if paper_dir else shared_dir() / "paper"
    if not paper.is_dir():
        raise UserError(f"{paper}: the study's titles are needed (run `mine import-study DIR --db PATH` "
                        "or pass --paper DIR holding FailureAnalysis.xlsx)")
    return import_study(paper, write=False).titles


def embed(texts: Sequence[str], conn: sqlite3.Connection | None = None) -> np.ndarray:
    """Embeddings of ``texts`` with the classifier's embedding model (cached in the store when ``conn``)."""
    from pipeline.classify.embed import Embedder, embed_texts

    return embed_texts(list(texts), Embedder(), conn, progress=False)


@dataclass
class ValidationResult:
    """Rows: one per (direction, dimension, category, method); summary: mean errors and coverage."""

    rows: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"summary": self.summary, "rows": self.rows.to_dict(orient="records")}


def validate_estimates(
    labels: pd.DataFrame,
    titles: dict[str, str],
    *,
    conn: sqlite3.Connection | None = None,
    dimensions: Sequence[str] = VALIDATE_DIMENSIONS,
    methods: Sequence[str] = METHODS,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    repeats: int = 2,
    seed: int = 0,
) -> ValidationResult:
    """Cross-converter validation of every estimation method (see the module docstring)."""
    labels = labels[labels["url"].isin(titles)].reset_index(drop=True)
    converters = sorted(labels["converter"].unique())
    if len(converters) != 2:
        raise UserError(f"validate-estimates needs labelled issues of exactly two converters with titles; got {converters}")
    texts = [titles[u] for u in labels["url"]]
    emb = embed(texts, conn)
    records = []
    for train_conv in converters:
        target_conv = next(c for c in converters if c != train_conv)
        tr = (labels["converter"] == train_conv).to_numpy()
        te = ~tr
        ev = classifier_evidence([t for t, m in zip(texts, tr) if m], emb[tr], labels[tr].reset_index(drop=True),
                                 [t for t, m in zip(texts, te) if m], emb[te], dimensions,
                                 repeats=repeats, seed=seed)
        target_labels = labels[te].reset_index(drop=True)
        for dim in dimensions:
            if dim not in ev.calibrations:
                continue
            cal = ev.calibrations[dim]
            merged = set(cal.merged)
            classes = cal.classes
            # gold in the classifier's label space: categories it never saw in training count as "other"
            gold_cat = target_labels[dim].astype(str).map(lambda v: "other" if v in merged or v not in classes else v)
            gold = gold_cat.value_counts(normalize=True).reindex(classes, fill_value=0.0).to_numpy()
            n = len(target_labels)
            for m in methods:
                est = estimate_groups(cal, ev.target[dim], [target_conv] * n, method=m, bootstrap=bootstrap,
                                      seed=seed, total=None, dimension=dim)
                g = est.groups[target_conv]
                for j, cat in enumerate(classes):
                    records.append({
                        "train": train_conv, "target": target_conv, "dimension": dim, "category": cat,
                        "method": m, "gold": float(gold[j]), "estimate": float(g.shares[j]),
                        "low": float(g.low[j]), "high": float(g.high[j]),
                        "abs_error_pp": float(abs(g.shares[j] - gold[j]) * 100),
                        "inside": bool(g.low[j] - 1e-9 <= gold[j] <= g.high[j] + 1e-9),
                    })
    rows = pd.DataFrame.from_records(records)
    return ValidationResult(rows, summarise(rows))


def summarise(rows: pd.DataFrame, chosen: str = DEFAULT_METHOD) -> dict:
    """Mean absolute error per method (overall and per direction x dimension), interval coverage,
    and the done-criteria: corrected error <= plain counting's, key shares inside their intervals."""
    mean = rows.groupby("method")["abs_error_pp"].mean().round(2).to_dict()
    by = (rows.groupby(["train", "target", "dimension", "method"])["abs_error_pp"].mean().round(2)
          .reset_index().to_dict(orient="records"))
    coverage = rows.groupby("method")["inside"].mean().round(3).to_dict()
    key = []
    for dim, cat in KEY_SHARES:
        sel = rows[(rows["method"] == chosen) & (rows["dimension"] == dim) & (rows["category"] == cat)]
        key += [{"train": r.train, "target": r.target, "dimension": dim, "category": cat, "gold": r.gold,
                 "estimate": r.estimate, "low": r.low, "high": r.high, "inside": bool(r.inside)}
                for r in sel.itertuples()]
    best = min(mean, key=mean.get) if mean else None
    return {
        "chosen_method": chosen,
        "best_method_measured": best,
        "mean_abs_error_pp": mean,
        "mean_abs_error_pp_by_direction": by,
        "coverage": coverage,
        "key_shares": key,
        "corrected_not_worse_than_counting": bool(mean.get(chosen, np.inf) <= mean.get("cc", np.inf)),
        "key_shares_inside": bool(key) and all(k["inside"] for k in key),
    }
