"""Build a labelling or adjudication session from command-line choices."""

from __future__ import annotations

from pathlib import Path

from pipeline.codebook import load_codebook
from pipeline.errors import UserError
from pipeline.labelling.app import Adjudication, LabelSession
from pipeline.labelling.queue import default_queue, disagreements, read_queue_file
from pipeline.labelling.storage import latest_records, label_path, validate_rater
from pipeline.label_files.files import read_labels
from pipeline.paths import default_db
from pipeline.store.db import open_store


def label_session(rater: str, *, queue_file: Path | None, db: Path | None, labels_dir: Path,
                  blind: bool = False) -> LabelSession:
    """A session over a queue file, or over the store's filtered issues the rater has not labelled."""
    rater = validate_rater(rater)
    codebook = load_codebook()
    if queue_file is not None:
        queue, note = read_queue_file(queue_file), f"queue: {queue_file}"
    else:
        conn = open_store(db)
        try:
            labelled = set(latest_records(label_path(labels_dir, rater)))
            queue, note = default_queue(conn, labelled)
        finally:
            conn.close()
        if not queue:
            raise UserError(f"{db or 'the store'}: no issues left to label for {rater} "
                            "(crawl first, or pass --queue FILE from `mine sample`)")
    return LabelSession(rater=rater, queue=queue, db_path=db or default_db(), labels_dir=labels_dir, blind=blind,
                        codebook=codebook, queue_note=note)


def adjudication_session(file_a: Path, file_b: Path, rater: str, *, db: Path | None, labels_dir: Path,
                         blind: bool = False) -> LabelSession:
    """A session over the issues two label files disagree on; the choice goes to ``<rater>.jsonl``."""
    rater = validate_rater(rater)
    codebook = load_codebook()
    df_a, df_b = read_labels(file_a, codebook), read_labels(file_b, codebook)
    items = disagreements(df_a, df_b, codebook)
    if not items:
        raise UserError(f"{file_a} and {file_b}: no shared issue is labelled differently; nothing to adjudicate")
    adj = Adjudication(name_a=Path(file_a).name, name_b=Path(file_b).name, items={d.url: d for d in items})
    return LabelSession(rater=rater, queue=[d.url for d in items], db_path=db or default_db(), labels_dir=labels_dir,
                        blind=blind, codebook=codebook, adjudication=adj,
                        queue_note=f"adjudicating {len(items)} disagreement(s) between {file_a} and {file_b}")
