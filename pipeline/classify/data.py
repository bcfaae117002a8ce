"""Training and evaluation data: human labels joined to the issue texts the store holds."""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from pipeline.classify.text import IssueDoc, describe_kinds, issue_docs
from pipeline.codebook import DIMENSIONS
from pipeline.errors import UserError
from pipeline.label_files.files import default_label_files, human_label_files, read_many  # noqa: F401 (re-exported)


@dataclass
class LabelledDocs:
    """Labelled issues that have a text: the label rows and, aligned with them, the issues' documents."""

    labels: pd.DataFrame
    docs: list[IssueDoc]
    missing: list[str]

    @property
    def kinds(self) -> list[str]:
        return [d.kind for d in self.docs]

    @property
    def text_kind(self) -> str:
        return describe_kinds(self.kinds)


def join_docs(conn: sqlite3.Connection, labels: pd.DataFrame, files: Sequence[Path | str] = ()) -> LabelledDocs:
    """Attach each labelled issue's document from the store (:func:`~pipeline.classify.text.issue_docs`).

    Issues without any text in the store (neither crawled nor with a recorded title) are left
    out and listed in ``missing``; none left is a :class:`UserError` saying how to fix it.
    """
    docs = issue_docs(conn, labels["url"])
    missing = [u for u in labels["url"] if u not in docs]
    keep = labels[labels["url"].isin(docs)].reset_index(drop=True)
    if keep.empty:
        where = ", ".join(map(str, files)) or "the label files"
        raise UserError(
            f"{where}: none of the {len(labels)} labelled issues has a text in the store; "
            "crawl them, or record the study's titles with `mine import-study PAPER_DIR --db DB`"
        )
    return LabelledDocs(keep, [docs[u] for u in keep["url"]], missing)


def labelled_docs(conn: sqlite3.Connection, label_files: Sequence[Path | str]) -> LabelledDocs:
    """Read ``label_files`` (default ``labels/study.csv``) and join them to the store's texts (:func:`join_docs`)."""
    files = list(label_files) or default_label_files()
    return join_docs(conn, read_many(files), files)


def labels_digest(labels: pd.DataFrame, dimensions: Sequence[str] = DIMENSIONS) -> str:
    """A digest of the label table's content (URL and every rated dimension), independent of row order."""
    cols = [c for c in ("url", *dimensions) if c in labels.columns]
    rows = sorted(labels[cols].fillna("").astype(str).itertuples(index=False, name=None))
    return hashlib.sha256(repr((cols, rows)).encode()).hexdigest()[:16]
