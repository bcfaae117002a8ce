"""Training and evaluation data: human labels joined to the issue texts the store holds."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from pipeline.classify.text import describe_kinds, texts_for
from pipeline.errors import UserError
from pipeline.label_files.files import read_many
from pipeline.paths import labels_dir


def default_label_files() -> list[Path]:
    """The study's labels, ``labels/study.csv``."""
    return [labels_dir() / "study.csv"]


def human_label_files() -> list[Path]:
    """Every file of human labels: the study CSV and the labelling tool's ``labels/*.jsonl``."""
    d = labels_dir()
    files = [d / "study.csv"] if (d / "study.csv").is_file() else []
    return files + sorted(d.glob("*.jsonl"))


@dataclass
class LabelledTexts:
    """Labelled issues that have a text: the label rows, their texts and which kind of text each is."""

    labels: pd.DataFrame
    texts: list[str]
    kinds: list[str]
    missing: list[str]

    @property
    def text_kind(self) -> str:
        return describe_kinds(self.kinds)


def labelled_texts(conn: sqlite3.Connection, label_files: Sequence[Path | str], kind: str = "full") -> LabelledTexts:
    """Read ``label_files`` and attach each issue's text from the store (``kind`` as in :func:`texts_for`).

    Issues without any text in the store (neither crawled nor with a recorded title) are left
    out and listed in ``missing``; none left is a :class:`UserError` saying how to fix it.
    """
    files = list(label_files) or default_label_files()
    labels = read_many(files)
    texts, kinds = texts_for(conn, labels["url"], kind)
    missing = [u for u in labels["url"] if u not in texts]
    keep = labels[labels["url"].isin(texts)].reset_index(drop=True)
    if keep.empty:
        raise UserError(
            f"{', '.join(map(str, files))}: none of the {len(labels)} labelled issues has a text in the store; "
            "crawl them, or record the study's titles with `mine import-study PAPER_DIR --db DB`"
        )
    return LabelledTexts(keep, [texts[u] for u in keep["url"]], [kinds[u] for u in keep["url"]], missing)
