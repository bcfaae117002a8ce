"""Read and write label files: CSV (committed study labels) and JSONL (labelling sessions).

Every reader returns the same table, one row per issue URL:
``url, converter, repo, number, stage, symptom, cause, cause_subtype, rater`` (a dimension a
file does not rate is absent or empty). In JSONL files the latest record per URL wins.

>>> df = read_labels("labels/study.csv")
>>> df.groupby("converter").size().to_dict()
{'tf2onnx': 100, 'torch.onnx': 100}
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Sequence

import pandas as pd

from pipeline.codebook import DIMENSIONS, SUBTYPE_DIMENSION, Codebook, load_codebook
from pipeline.errors import UserError
from pipeline.sources import converter_for_repo, load_sources, parse_issue_url

LABEL_COLUMNS = ["url", "converter", "repo", "number", "stage", "symptom", "cause", "cause_subtype", "rater"]
RATED = [*DIMENSIONS, SUBTYPE_DIMENSION]


def default_label_files() -> list[Path]:
    """The study's labels, ``labels/study.csv``."""
    from pipeline.paths import labels_dir

    return [labels_dir() / "study.csv"]


def human_label_files() -> list[Path]:
    """Every file of human labels: the study CSV and the labelling tool's ``labels/*.jsonl``."""
    from pipeline.paths import labels_dir

    d = labels_dir()
    files = [d / "study.csv"] if (d / "study.csv").is_file() else []
    return files + sorted(d.glob("*.jsonl"))


def read_labels(path: Path | str, codebook: Codebook | None = None) -> pd.DataFrame:
    """Read one label file (``.csv`` or ``.jsonl``) into the common table, validating every value.

    Errors name the file, the line and the column at fault.
    """
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: label file not found")
    cb = codebook or load_codebook()
    if p.suffix.lower() == ".jsonl":
        rows = list(_jsonl_rows(p))
    else:
        rows = list(_csv_rows(p))
    if not rows:
        raise UserError(f"{p}: no labels in file")
    sources = load_sources()
    out: list[dict] = []
    present = set()
    for line, row in rows:
        rec = _normalise(p, line, row, cb, sources)
        present.update(k for k in RATED if rec.get(k))
        out.append(rec)
    df = pd.DataFrame(out, columns=LABEL_COLUMNS)
    # latest record per url wins (JSONL sessions append; a CSV should not repeat urls)
    df = df.drop_duplicates("url", keep="last").reset_index(drop=True)
    # a dimension no row rates is absent, so callers can tell "not rated" from "rated empty"
    for dim in RATED:
        if dim not in present:
            df = df.drop(columns=dim)
    df.attrs["path"] = str(p)
    return df


def rated_dimensions(df: pd.DataFrame, dimensions: Sequence[str] = DIMENSIONS) -> list[str]:
    """Those of ``dimensions`` (default stage, symptom, cause) that at least one row of ``df`` rates."""
    return [d for d in dimensions if d in df.columns and df[d].fillna("").astype(str).str.len().gt(0).any()]


def read_many(paths: list[Path | str], codebook: Codebook | None = None) -> pd.DataFrame:
    """Read several label files; later files win for a URL present in more than one."""
    frames = [read_labels(p, codebook) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    return df.drop_duplicates("url", keep="last").reset_index(drop=True)


def write_csv(df: pd.DataFrame, path: Path | str) -> Path:
    """Write a label table as CSV with the common columns (those present), sorted by converter and number."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    cols = [c for c in LABEL_COLUMNS if c in df.columns]
    df = df.sort_values(["converter", "number"], kind="stable")[cols]
    df.to_csv(p, index=False, lineterminator="\n")
    return p


def _csv_rows(p: Path):
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{p}: not a UTF-8 text file") from None
    reader = csv.DictReader(text.splitlines())
    if not reader.fieldnames or "url" not in reader.fieldnames:
        raise UserError(f"{p}: missing column 'url' (columns: {', '.join(reader.fieldnames or []) or 'none'})")
    for i, row in enumerate(reader, start=2):
        yield i, row


def _jsonl_rows(p: Path):
    with p.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                # a torn last line (a crash mid-append) is the only tolerated damage
                if not line.endswith("\n"):
                    continue
                raise UserError(f"{p}:{i}: not valid JSON ({e.msg})") from None
            if not isinstance(obj, dict) or "url" not in obj:
                raise UserError(f"{p}:{i}: a label record needs a 'url'")
            yield i, obj


def _normalise(p: Path, line: int, row: dict, cb: Codebook, sources) -> dict:
    url = str(row.get("url") or "").strip()
    try:
        repo, number = parse_issue_url(url)
    except ValueError as e:
        raise UserError(f"{p}:{line}: column 'url': {e}") from None
    converter = (row.get("converter") or "").strip() or converter_for_repo(repo, sources) or repo
    rec = {"url": url, "converter": converter, "repo": repo, "number": number,
           "rater": str(row.get("rater") or "").strip()}
    for dim in DIMENSIONS:
        val = row.get(dim)
        val = "" if val is None or (isinstance(val, float) and pd.isna(val)) else str(val).strip()
        if val and val not in cb.ids(dim):
            raise UserError(f"{p}:{line}: column '{dim}': {val!r} is not a {dim} id; valid: {', '.join(cb.ids(dim))}")
        rec[dim] = val
    sub = str(row.get(SUBTYPE_DIMENSION) or "").strip()
    if sub:
        allowed = cb.subtypes(rec["cause"]) if rec["cause"] else cb.ids(SUBTYPE_DIMENSION)
        if sub not in allowed:
            raise UserError(
                f"{p}:{line}: column 'cause_subtype': {sub!r} is not a subtype of {rec['cause'] or 'any cause'}; "
                f"valid: {', '.join(allowed) or 'none'}"
            )
    rec[SUBTYPE_DIMENSION] = sub
    return rec
