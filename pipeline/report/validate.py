"""Check the corrected prevalence estimates against known answers (``mine validate-estimates``).

The study labels two converters. Fit the classifier (as ``mine train`` fits it, through the
classify stage's public interface) on one converter's labelled issues, estimate the other
converter's stage and symptom shares from the classifier alone, and compare with that
converter's human labels (the gold shares); then the reverse. For every share this gives the
absolute error of each estimation method (plain classify-and-count included) in percentage
points and whether the gold share lies inside the 95% bootstrap interval.

Two text settings side by side, on the same issues:

- ``full``: each issue's text as the store holds it (title, body and comments where crawled,
  the title otherwise), on both sides; estimates corrected per text kind (``matched``, what the
  reports do) and, for comparison, with all training issues whatever their kind (``pooled``);
- ``title``: every issue by its title only, on both sides (the earlier, title-only pipeline).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from pipeline.errors import UserError
from pipeline.report.estimate import DEFAULT_BOOTSTRAP, DEFAULT_METHOD, METHODS, Calibration, estimate_groups

VALIDATE_DIMENSIONS = ("stage", "symptom")
KEY_SHARES = (("stage", "node_conversion"), ("symptom", "wrong_model"))
# (text, calibration) settings measured; the first is the reports' own and the one the summary's criteria use
SETTINGS = (("full", "matched"), ("full", "pooled"), ("title", "matched"))


@dataclass
class ValidationResult:
    """Rows: one per (setting, direction, dimension, category, method); summary: mean errors and coverage."""

    rows: pd.DataFrame
    summary: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"summary": self.summary, "rows": self.rows.to_dict(orient="records")}


def validate_estimates(
    conn: sqlite3.Connection,
    labels: pd.DataFrame,
    *,
    dimensions: Sequence[str] = VALIDATE_DIMENSIONS,
    methods: Sequence[str] = METHODS,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    settings: Sequence[tuple[str, str]] = SETTINGS,
    embedder=None,
) -> ValidationResult:
    """Cross-converter validation of every estimation method (see the module docstring).

    ``conn``: a store holding the labelled issues' texts (crawled issues and/or recorded titles).
    """
    from pipeline.classify.interface import Embedder, fit_on_store, issue_docs, issue_probabilities

    embedder = embedder or Embedder()
    docs = issue_docs(conn, labels["url"])
    labels = labels[labels["url"].isin(docs)].reset_index(drop=True)
    converters = sorted(labels["converter"].unique())
    if len(converters) != 2:
        raise UserError(f"validate-estimates needs labelled issues of exactly two converters with a text in the store; "
                        f"got {converters or 'none'} (record the study's titles with `mine import-study DIR --db DB`, "
                        "crawl the issues)")
    records = []
    for text in dict.fromkeys(t for t, _ in settings):
        title_only = text == "title"
        for train_conv in converters:
            target_conv = next(c for c in converters if c != train_conv)
            train = labels[labels["converter"] == train_conv].reset_index(drop=True)
            target = labels[labels["converter"] == target_conv].reset_index(drop=True)
            model = fit_on_store(conn, train, embedder=embedder, title_only=title_only, seed=seed)
            probs, kinds = issue_probabilities(conn, model, target["url"].tolist(), embedder=embedder, title_only=title_only)
            tkinds = [kinds[u] for u in target["url"]]
            for dim in dimensions:
                if dim not in model.evidence:
                    continue
                cal = Calibration.from_evidence(model.evidence[dim])
                p = probs[dim].reindex(index=target["url"], columns=cal.classes, fill_value=0.0).to_numpy(float)
                gold = _gold_shares(target[dim], cal)
                for calibration in (c for t, c in settings if t == text):
                    for m in methods:
                        est = estimate_groups(cal, p, [target_conv] * len(target), method=m, bootstrap=bootstrap,
                                              seed=seed, total=None, dimension=dim, target_kinds=tkinds,
                                              match_kinds=calibration == "matched")
                        g = est.groups[target_conv]
                        for j, cat in enumerate(cal.classes):
                            records.append({
                                "text": text, "calibration": calibration, "train": train_conv, "target": target_conv,
                                "dimension": dim, "category": cat, "method": m, "gold": float(gold[j]),
                                "estimate": float(g.shares[j]), "low": float(g.low[j]), "high": float(g.high[j]),
                                "abs_error_pp": float(abs(g.shares[j] - gold[j]) * 100),
                                "inside": bool(g.low[j] - 1e-9 <= gold[j] <= g.high[j] + 1e-9),
                                "n_target": len(target), "target_full_text": int(sum(k == "full" for k in tkinds)),
                            })
    rows = pd.DataFrame.from_records(records)
    return ValidationResult(rows, summarise(rows, settings=settings))


def _gold_shares(values: pd.Series, cal: Calibration) -> np.ndarray:
    """Gold shares in the classifier's label space: categories it never saw in training count as ``other``."""
    merged, classes = set(cal.merged), cal.classes
    cats = values.astype(str).map(lambda v: "other" if v in merged or v not in classes else v)
    return cats.value_counts(normalize=True).reindex(classes, fill_value=0.0).to_numpy()


def _setting_summary(rows: pd.DataFrame, chosen: str) -> dict:
    mean = rows.groupby("method")["abs_error_pp"].mean().round(2).to_dict()
    coverage = rows.groupby("method")["inside"].mean().round(3).to_dict()
    by = (rows.groupby(["train", "target", "dimension", "method"])["abs_error_pp"].mean().round(2)
          .reset_index().to_dict(orient="records"))
    key = []
    for dim, cat in KEY_SHARES:
        sel = rows[(rows["method"] == chosen) & (rows["dimension"] == dim) & (rows["category"] == cat)]
        key += [{"train": r.train, "target": r.target, "dimension": dim, "category": cat, "gold": r.gold,
                 "estimate": r.estimate, "low": r.low, "high": r.high, "inside": bool(r.inside)}
                for r in sel.itertuples()]
    return {"mean_abs_error_pp": mean, "coverage": coverage, "mean_abs_error_pp_by_direction": by, "key_shares": key,
            "best_method_measured": min(mean, key=mean.get) if mean else None}


def summarise(rows: pd.DataFrame, chosen: str = DEFAULT_METHOD, settings: Sequence[tuple[str, str]] = SETTINGS) -> dict:
    """Mean absolute error per method and interval coverage per setting; the top-level figures and the
    done-criteria (corrected error <= plain counting's, key shares inside their intervals) are those of
    the reports' own setting (full text, matched calibration)."""
    out: dict = {"chosen_method": chosen, "settings": {}}
    for text, calibration in settings:
        sel = rows[(rows["text"] == text) & (rows["calibration"] == calibration)] if len(rows) else rows
        if len(sel):
            out["settings"][f"{text}/{calibration}"] = _setting_summary(sel, chosen)
    main = out["settings"].get(f"{settings[0][0]}/{settings[0][1]}") or next(iter(out["settings"].values()), {})
    mean = main.get("mean_abs_error_pp", {})
    out.update({
        "setting": f"{settings[0][0]}/{settings[0][1]}",
        "best_method_measured": main.get("best_method_measured"),
        "mean_abs_error_pp": mean,
        "mean_abs_error_pp_by_direction": main.get("mean_abs_error_pp_by_direction", []),
        "coverage": main.get("coverage", {}),
        "key_shares": main.get("key_shares", []),
        "corrected_not_worse_than_counting": bool(mean.get(chosen, np.inf) <= mean.get("cc", np.inf)),
        "key_shares_inside": bool(main.get("key_shares")) and all(k["inside"] for k in main["key_shares"]),
    })
    return out
