"""Label Studio interop, inbound: annotations into label files, one per annotator.

Reads what Label Studio hands out: a JSON export (tasks with their ``annotations``), a
JSON-MIN export (one flat row per annotation, task data at the top level), or the tasks the
SDK lists (same shape as JSON). Each annotator's latest non-cancelled annotation of a task
becomes one record in the label format of ``mine label`` (``labels/<rater>.jsonl``); choices
map through the codebook (display names, ids and aliases all resolve). A task an annotator
only skipped (Label Studio's cancelled annotation) is reported, never imported. Errors name
the task id and the value; nothing is written when any annotation is invalid.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline.codebook import DIMENSIONS, SUBTYPE_DIMENSION, Codebook
from pipeline.errors import UserError
from pipeline.labelling.storage import (
    LABEL_DIMENSIONS, LabelError, append_records, label_path, latest_records, make_record, validate_label,
)
from pipeline.sources import parse_issue_url

NOTE_TAG = "note"


@dataclass(frozen=True)
class Annotation:
    """One annotation of one task as Label Studio stores it (``result`` in its own format)."""

    task: str          # the task id, for messages
    url: str
    annotator: str     # Label Studio's user id (or e-mail); "" when the export does not say
    result: tuple
    cancelled: bool = False
    updated_at: str = ""


@dataclass
class Pulled:
    """Label records per rater name, and what was skipped or left unannotated."""

    records: dict[str, list[dict]] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)   # rater -> URLs only skipped/cancelled
    unannotated: int = 0                                           # tasks nobody annotated


def _is_choice_tag(name: str) -> bool:
    return name in LABEL_DIMENSIONS or name.startswith(SUBTYPE_DIMENSION + "_")


def _annotator_of(completed_by: object) -> str:
    if isinstance(completed_by, dict):
        return str(completed_by.get("email") or completed_by.get("id") or "")
    return "" if completed_by is None else str(completed_by)


def _url_of(value: object, where: str) -> str:
    url = str(value or "").strip()
    try:
        parse_issue_url(url)
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None
    return url


def annotations_of(tasks: Iterable[dict], source: str) -> tuple[list[Annotation], int]:
    """Annotations of a JSON or JSON-MIN export (or SDK task list) and the number of tasks without any.

    ``source`` names the file or server in error messages.
    """
    out: list[Annotation] = []
    empty = 0
    for n, task in enumerate(tasks, start=1):
        if not isinstance(task, dict):
            raise UserError(f"{source}: entry {n} is not a task object")
        tid = str(task.get("id", f"#{n}"))
        if "data" in task or "annotations" in task or "completions" in task:
            url = _url_of((task.get("data") or {}).get("url"), f"{source}: task {tid}: data.url")
            anns = [a for a in (task.get("annotations") or task.get("completions") or []) if isinstance(a, dict)]
            if not anns:
                empty += 1
            for a in anns:
                out.append(Annotation(tid, url, _annotator_of(a.get("completed_by")), tuple(a.get("result") or ()),
                                      bool(a.get("was_cancelled")), str(a.get("updated_at") or a.get("created_at") or "")))
        elif "url" in task:
            # JSON-MIN: task data at the top level, one row per (non-cancelled) annotation, each
            # control's value as a bare string (one choice / one text) or a list
            url = _url_of(task.get("url"), f"{source}: task {tid}: url")
            result = tuple(_min_result(name, value) for name, value in task.items()
                           if (_is_choice_tag(name) or name == NOTE_TAG) and value not in (None, "", []))
            if task.get("annotation_id") is None and not result:
                empty += 1
                continue
            out.append(Annotation(tid, url, _annotator_of(task.get("annotator")), result, False,
                                  str(task.get("updated_at") or task.get("created_at") or "")))
        else:
            raise UserError(f"{source}: entry {n} (task {tid}) has neither data.url (JSON export) nor url "
                            "(JSON-MIN export); export the project as JSON")
    return out, empty


def _min_result(name: str, value: object) -> dict:
    values = value if isinstance(value, list) else [value]
    if name == NOTE_TAG:
        return {"from_name": name, "type": "textarea", "value": {"text": [str(v) for v in values]}}
    return {"from_name": name, "type": "choices", "value": {"choices": values}}


def label_of(ann: Annotation, codebook: Codebook, source: str) -> tuple[dict[str, str], str]:
    """The validated label and the note of one annotation; :class:`UserError` names task and value."""
    where = f"{source}: task {ann.task}"
    raw: dict[str, str] = {}
    by_cause: dict[str, str] = {}  # subtype choices per cause tag (cause_subtype_<cause>)
    note = ""
    for r in ann.result:
        if not isinstance(r, dict):
            continue
        name, value = str(r.get("from_name") or ""), r.get("value") or {}
        if _is_choice_tag(name):
            choices = value.get("choices") or []
            if len(choices) != 1:
                raise UserError(f"{where}: {name}: expected one choice, got {choices!r}")
            if name in LABEL_DIMENSIONS:
                raw[name] = str(choices[0])
            else:
                by_cause[name[len(SUBTYPE_DIMENSION) + 1:]] = str(choices[0])
        elif name == NOTE_TAG:
            text = value.get("text") or []
            note = "\n".join(text) if isinstance(text, list) else str(text)
    label: dict[str, str] = {}
    for dim in DIMENSIONS:
        if dim in raw:
            try:
                label[dim] = codebook.resolve(dim, raw[dim], by="name")
            except KeyError as e:
                raise UserError(f"{where}: {dim}: {e.args[0]}") from None
    # the subtype list of the chosen cause wins; a list left from a cause chosen earlier is ignored
    if label.get("cause") in by_cause:
        raw[SUBTYPE_DIMENSION] = by_cause[label["cause"]]
    if SUBTYPE_DIMENSION in raw:
        cause = label.get("cause")
        try:
            label[SUBTYPE_DIMENSION] = codebook.resolve(SUBTYPE_DIMENSION, raw[SUBTYPE_DIMENSION], by="name",
                                                        cause=cause if cause else None)
        except KeyError as e:
            raise UserError(f"{where}: cause_subtype (cause {cause!r}): {e.args[0]}") from None
    try:
        return validate_label(label, codebook), note
    except LabelError as e:
        raise UserError(f"{where}: {e}") from None


def _timestamp(updated_at: str) -> str | None:
    """Label Studio's ``updated_at`` in the label files' format (UTC, milliseconds); None if unreadable."""
    try:
        t = datetime.fromisoformat(updated_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def collect(annotations: list[Annotation], codebook: Codebook, source: str,
            rater_of: Callable[[str], str]) -> Pulled:
    """Records per rater (``rater_of(annotator)``): each annotator's latest non-cancelled annotation
    per task; tasks an annotator only cancelled are listed in ``skipped``. All or nothing."""
    latest: dict[tuple[str, str], Annotation] = {}
    cancelled: dict[tuple[str, str], Annotation] = {}
    for ann in annotations:
        key = (ann.annotator, ann.url)
        pick = cancelled if ann.cancelled else latest
        if key not in pick or ann.updated_at >= pick[key].updated_at:  # later edits win; list order breaks ties
            pick[key] = ann
    pulled = Pulled()
    for (annotator, url), ann in latest.items():
        label, note = label_of(ann, codebook, source)
        rater = rater_of(annotator)
        pulled.records.setdefault(rater, []).append(
            make_record(url, label, note=note, rater=rater, codebook=codebook, timestamp=_timestamp(ann.updated_at)))
    for (annotator, url) in cancelled.keys() - latest.keys():
        pulled.skipped.setdefault(rater_of(annotator), []).append(url)
    return pulled


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def rater_names(annotators: dict[str, str]) -> dict[str, str]:
    """A label-file name per annotator: ``{annotator id: e-mail or name}`` -> ``{id: rater}``.

    The e-mail's local part (``alice@lab.org`` -> ``alice``), or the whole address where two
    annotators share one; an annotator known only by id becomes ``annotator-<id>``.
    """
    def clean(s: str) -> str:
        s = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()  # Ünï -> Uni
        return re.sub(r"\.{2,}", ".", _UNSAFE.sub("-", s)).strip(".-_")[:64].rstrip(".") or "annotator"

    local = {a: clean(str(e).split("@")[0]) if e else f"annotator-{clean(a)}" for a, e in annotators.items()}
    taken: dict[str, int] = {}
    for name in local.values():
        taken[name] = taken.get(name, 0) + 1
    return {a: (clean(str(annotators[a]).replace("@", "_at_")) if taken[n] > 1 and annotators[a] else n)
            for a, n in local.items()}


def append_new(labels_dir: Path, pulled: Pulled) -> dict[str, tuple[Path, int, int]]:
    """Append each rater's records that differ from the latest in ``<labels_dir>/<rater>.jsonl``.

    Returns ``{rater: (file, records written, unchanged)}``: pulling twice writes nothing twice.
    """
    out = {}
    for rater, records in sorted(pulled.records.items()):
        path = label_path(labels_dir, rater)
        have = latest_records(path)
        new = [r for r in records if not _same_label(have.get(r["url"]), r)]
        if new:
            append_records(path, new)
        out[rater] = (path, len(new), len(records) - len(new))
    return out


def _same_label(old: dict | None, new: dict) -> bool:
    return old is not None and all((old.get(k) or "") == (new.get(k) or "") for k in (*LABEL_DIMENSIONS, "note"))


def read_export(path: Path | str) -> list:
    """The task list of a Label Studio JSON or JSON-MIN export file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: not a JSON file ({e})") from None
    if not isinstance(data, list):
        raise UserError(f"{p}: expected a Label Studio JSON export (a list of tasks)")
    return data


def import_export(path: Path | str, rater: str, codebook: Codebook, labels_dir: Path,
                  annotator: str | None = None) -> tuple[Path, int, int, list[str]]:
    """Append one annotator's annotations from an export file to ``<labels_dir>/<rater>.jsonl``.

    An export holding several annotators' work needs ``annotator`` (their Label Studio user id,
    or e-mail): silently keeping one of them would lose the other's labels. Returns the label
    file, the records written, the tasks without annotation, and the URLs the annotator skipped.
    """
    p = Path(path)
    anns, empty = annotations_of(read_export(p), str(p))
    who = sorted({a.annotator for a in anns})
    if annotator is not None:
        if str(annotator) not in who:
            raise UserError(f"{p}: no annotation by --annotator {annotator}; annotators in this export: "
                            f"{', '.join(w or '(unnamed)' for w in who) or 'none'}")
        anns = [a for a in anns if a.annotator == str(annotator)]
    elif len(who) > 1:
        counts = {w: len({a.url for a in anns if a.annotator == w}) for w in who}
        listed = ", ".join(f"{w or '(unnamed)'} ({n} tasks)" for w, n in counts.items())
        raise UserError(f"{p}: annotations by {len(who)} annotators ({listed}); import one at a time with "
                        "--annotator ID --rater NAME, or use `mine labels pull`, which writes one file per annotator")
    pulled = collect(anns, codebook, str(p), lambda _: rater)
    written = append_new(labels_dir, pulled).get(rater, (label_path(labels_dir, rater), 0, 0))
    return written[0], written[1], empty, pulled.skipped.get(rater, [])
