"""Inter-rater agreement between two label files: Cohen's kappa, raw agreement, disagreements.

>>> from pipeline.label_files.files import read_labels
>>> res = agreement(read_labels("labels/pilot-r1.csv"), read_labels("labels/pilot-r2.csv"))
>>> round(res["dimensions"]["cause"]["kappa"], 2), round(res["dimensions"]["symptom"]["kappa"], 2)
(0.9, 0.95)
"""

from __future__ import annotations

import math

import pandas as pd
from sklearn.metrics import cohen_kappa_score

from pipeline.codebook import SUBTYPE_DIMENSION
from pipeline.errors import UserError
from pipeline.label_files.files import RATED, rated_dimensions


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> dict:
    """Agreement over the issues both tables label, for each dimension both rate.

    Returns ``{"n", "only_a", "only_b", "dimensions": {dim: {"kappa", "agreement", "n",
    "disagreements": [{"url", "a", "b"}]}}}``. ``kappa`` is ``None`` when undefined (both raters
    used one and the same category throughout).
    """
    merged = a.merge(b, on="url", suffixes=("_a", "_b"))
    if merged.empty:
        raise UserError(f"{a.attrs.get('path', 'file A')} and {b.attrs.get('path', 'file B')} share no issue URL")
    both = set(rated_dimensions(b, RATED))
    dims = [d for d in rated_dimensions(a, RATED) if d in both]
    if not dims:
        raise UserError("the two files rate no dimension in common")
    out = {"n": int(len(merged)), "only_a": int(len(set(a["url"]) - set(b["url"]))),
           "only_b": int(len(set(b["url"]) - set(a["url"]))), "dimensions": {}}
    for dim in dims:
        ya = merged[f"{dim}_a"].fillna("").astype(str)
        yb = merged[f"{dim}_b"].fillna("").astype(str)
        if dim != SUBTYPE_DIMENSION:
            # an issue one rater left unrated on this dimension is not a disagreement
            keep = ya.ne("") & yb.ne("")
            ya, yb = ya[keep], yb[keep]
        n = int(len(ya))
        kappa = float(cohen_kappa_score(ya, yb)) if n else float("nan")
        dis = merged.loc[ya.index[ya != yb], ["url"]].assign(a=ya[ya != yb], b=yb[ya != yb])
        out["dimensions"][dim] = {
            "kappa": None if math.isnan(kappa) else round(kappa, 4),
            "agreement": round(float((ya == yb).mean()), 4) if n else None,
            "n": n,
            "disagreements": dis.to_dict("records"),
        }
    return out
