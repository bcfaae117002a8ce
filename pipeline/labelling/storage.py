"""Append-only label storage: ``labels/<rater>.jsonl``, one JSON record per save.

Nothing is lost: every append takes an exclusive ``fcntl.flock`` on the file (so two servers
or two browser tabs never interleave), writes whole lines with ``os.write`` (no user-space
buffer left to flush), then ``os.fsync`` before the caller confirms the save. The latest record per URL wins when reading.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline.codebook import DIMENSIONS, SUBTYPE_DIMENSION, Codebook
from pipeline.errors import UserError
from pipeline.sources import parse_issue_url

RECORD_FIELDS = ("url", "stage", "symptom", "cause", "cause_subtype", "note", "rater", "codebook_version", "timestamp")
LABEL_DIMENSIONS = (*DIMENSIONS, SUBTYPE_DIMENSION)
# a rater name becomes a file name: letters, digits, '.', '_', '-'; no leading dot; no path parts
_RATER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_NOTE = 5000


class LabelError(ValueError):
    """A label that cannot be saved (incomplete or unknown category); the message says which field."""


def validate_rater(name: str) -> str:
    """Return ``name`` if it is a safe rater name (it names ``labels/<name>.jsonl``), else raise UserError."""
    name = (name or "").strip()
    if not _RATER_RE.fullmatch(name) or name.endswith(".") or ".." in name:
        raise UserError(
            f"--rater {name!r}: a rater name must be 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (it becomes the file name labels/<rater>.jsonl)"
        )
    return name


def label_path(labels_dir: Path | str, rater: str) -> Path:
    """``<labels_dir>/<rater>.jsonl`` for a validated rater name."""
    return Path(labels_dir) / f"{validate_rater(rater)}.jsonl"


def validate_label(data: dict, codebook: Codebook) -> dict[str, str]:
    """Check one label (stage, symptom, cause and, where the cause has subtypes, cause_subtype).

    Returns the four values (``cause_subtype`` empty when the cause has none); raises
    :class:`LabelError` naming the first missing or unknown field.
    """
    out: dict[str, str] = {}
    for dim in DIMENSIONS:
        val = str(data.get(dim) or "").strip()
        if not val:
            raise LabelError(f"{dim} is missing: choose one of {', '.join(codebook.ids(dim))}")
        if val not in codebook.ids(dim):
            raise LabelError(f"{dim} {val!r} is not a category; valid: {', '.join(codebook.ids(dim))}")
        out[dim] = val
    subtypes = codebook.subtypes(out["cause"])
    sub = str(data.get(SUBTYPE_DIMENSION) or "").strip()
    if subtypes:
        if not sub:
            raise LabelError(f"cause_subtype is missing: cause {out['cause']!r} needs one of {', '.join(subtypes)}")
        if sub not in subtypes:
            raise LabelError(f"cause_subtype {sub!r} is not a subtype of {out['cause']!r}; valid: {', '.join(subtypes)}")
    elif sub:
        raise LabelError(f"cause_subtype {sub!r} given, but cause {out['cause']!r} has no subtypes")
    out[SUBTYPE_DIMENSION] = sub if subtypes else ""
    return out


def make_record(url: str, label: dict[str, str], *, note: str, rater: str, codebook: Codebook,
                timestamp: str | None = None) -> dict:
    """A full JSONL record in the documented field order."""
    parse_issue_url(url)  # raises ValueError on a non-issue URL
    note = (note or "").strip()
    if len(note) > MAX_NOTE:
        raise LabelError(f"note is {len(note)} characters; at most {MAX_NOTE}")
    return {
        "url": url,
        **{d: label.get(d, "") for d in LABEL_DIMENSIONS},
        "note": note,
        "rater": rater,
        "codebook_version": codebook.version,
        "timestamp": timestamp or datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
    }


def append_records(path: Path | str, records: list[dict]) -> None:
    """Append records as JSON lines under an exclusive lock; durable (fsync) when this returns."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    created = not p.exists()
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    fd = os.open(p, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            # a crash mid-append may have left a torn, never-confirmed last line: cut it off so
            # every line stays whole JSON (readers reject damage anywhere but at the end)
            _drop_torn_tail(fd)
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    if created:
        # make the new directory entry durable too
        dfd = os.open(p.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _drop_torn_tail(fd: int) -> None:
    """Truncate bytes after the last newline (a partial record from a crash mid-append)."""
    size = os.fstat(fd).st_size
    end = size
    chunk = 4096
    while end > 0:
        start = max(0, end - chunk)
        block = os.pread(fd, end - start, start)
        nl = block.rfind(b"\n")
        if nl >= 0:
            keep = start + nl + 1
            break
        end = start
    else:
        keep = 0
    if keep < size:
        os.ftruncate(fd, keep)


def read_records(path: Path | str) -> list[dict]:
    """All records of a JSONL label file in file order (missing file: empty; torn lines skipped)."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    with p.open(encoding="utf-8") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            lines = fh.readlines()
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn line from a crash mid-append; every whole line is kept
        if isinstance(obj, dict) and obj.get("url"):
            out.append(obj)
    return out


def latest_records(path: Path | str) -> dict[str, dict]:
    """The latest record per URL (later lines win)."""
    return {r["url"]: r for r in read_records(path)}


@dataclass
class LabelStore:
    """One rater's label file."""

    labels_dir: Path
    rater: str
    codebook: Codebook

    def __post_init__(self) -> None:
        self.rater = validate_rater(self.rater)
        self.labels_dir = Path(self.labels_dir)

    @property
    def path(self) -> Path:
        return label_path(self.labels_dir, self.rater)

    def save(self, url: str, data: dict, note: str = "") -> dict:
        """Validate and durably append one label; returns the record written."""
        label = validate_label(data, self.codebook)
        rec = make_record(url, label, note=note, rater=self.rater, codebook=self.codebook)
        append_records(self.path, [rec])
        return rec

    def latest(self) -> dict[str, dict]:
        return latest_records(self.path)

    def others(self) -> dict[str, dict[str, dict]]:
        """Other raters' latest records: ``{url: {rater: record}}`` from ``<labels_dir>/*.jsonl``."""
        out: dict[str, dict[str, dict]] = {}
        for p in sorted(self.labels_dir.glob("*.jsonl")):
            if p.stem == self.rater:
                continue
            for url, rec in latest_records(p).items():
                out.setdefault(url, {})[str(rec.get("rater") or p.stem)] = rec
        return out
