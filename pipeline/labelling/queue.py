"""Which issues a labelling session shows, in which order.

* a queue file: issue URLs one per line, ``#`` comments allowed (``mine sample`` writes these);
* by default: every filtered issue in the store the rater has not labelled, most uncertain
  first once the classifier has stored predictions (lowest top probability), else in order of
  creation;
* for adjudication: the issues two label files disagree on.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.codebook import Codebook
from pipeline.errors import UserError
from pipeline.labelling.issues import table_exists
from pipeline.labelling.storage import LABEL_DIMENSIONS
from pipeline.sources import issue_url, parse_issue_url


def read_queue_file(path: Path | str) -> list[str]:
    """Issue URLs of a queue file, in order, duplicates dropped; errors name the line."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: queue file not found")
    urls: list[str] = []
    for i, raw in enumerate(p.read_bytes().splitlines(), start=1):
        try:
            line = raw.decode("utf-8-sig" if i == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{p}:{i}: not UTF-8 text ({e.reason} at byte {e.start}); "
                            "a queue file holds one issue URL per line") from None
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            repo, number = parse_issue_url(text)
        except ValueError as e:
            raise UserError(f"{p}:{i}: {e}") from None
        # one spelling per issue (https, /issues/, no trailing slash): labels are keyed by URL
        urls.append(issue_url(repo, number))
    if not urls:
        raise UserError(f"{p}: no issue URLs in queue file")
    return list(dict.fromkeys(urls))


def filtered_urls(conn: sqlite3.Connection) -> tuple[list[str], str]:
    """URLs of the store's filtered issues in creation order, and a note on where they came from."""
    from pipeline.sample.filter import filtered_issues

    rows = sorted(filtered_issues(conn), key=lambda r: (r["created_at"] or "", r["number"]))
    return [r["url"] for r in rows], "queue: filtered issues from the store"


def order_by_uncertainty(conn: sqlite3.Connection, urls: list[str]) -> list[str]:
    """Most uncertain first (lowest top probability over dimensions); URLs without predictions keep
    their order, after those with predictions. No ``predictions`` table: order unchanged."""
    if not table_exists(conn, "predictions"):
        return list(urls)
    certainty = {r[0]: r[1] for r in conn.execute("SELECT url, MIN(probability) FROM predictions GROUP BY url")}
    if not certainty:
        return list(urls)
    pos = {u: i for i, u in enumerate(urls)}
    return sorted(urls, key=lambda u: (u not in certainty, certainty.get(u, 0.0), pos[u]))


def default_queue(conn: sqlite3.Connection, labelled: set[str]) -> tuple[list[str], str]:
    """Filtered issues the rater has not labelled, most uncertain first."""
    urls, note = filtered_urls(conn)
    urls = [u for u in urls if u not in labelled]
    return order_by_uncertainty(conn, urls), note


@dataclass
class Disagreement:
    """One issue two label files disagree on."""

    url: str
    a: dict[str, str]
    b: dict[str, str]
    dimensions: list[str]  # the shared dimensions that differ


def disagreements(df_a: pd.DataFrame, df_b: pd.DataFrame, codebook: Codebook | None = None) -> list[Disagreement]:
    """Issues in both tables whose labels differ on any dimension both rate (in A's order).

    A dimension counts as shared when both tables have the column; a value empty in either
    table is not a disagreement (it was not rated there).
    """
    shared = [d for d in LABEL_DIMENSIONS if d in df_a.columns and d in df_b.columns]
    b_by_url = {r["url"]: r for r in df_b.to_dict("records")}
    out: list[Disagreement] = []
    for ra in df_a.to_dict("records"):
        rb = b_by_url.get(ra["url"])
        if rb is None:
            continue
        differ = []
        for d in shared:
            va, vb = _val(ra.get(d)), _val(rb.get(d))
            if va and vb and va != vb:
                differ.append(d)
        if differ:
            out.append(Disagreement(
                url=ra["url"],
                a={d: _val(ra.get(d)) for d in LABEL_DIMENSIONS if d in df_a.columns},
                b={d: _val(rb.get(d)) for d in LABEL_DIMENSIONS if d in df_b.columns},
                dimensions=differ,
            ))
    return out


def _val(v: object) -> str:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return ""
    return str(v).strip()
