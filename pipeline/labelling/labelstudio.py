"""Label Studio interop: tasks + labelling config out, annotations back in.

Export: one task per issue, ``data = {url, title, text, operators}`` (``operators``: the
``namespace:Name`` list the issue names, shown as a header), with pre-annotations
(``predictions``) from a label file or the classifier's stored predictions, and the labelling
config (XML) built from the codebook; choices carry the codebook's display names. The subtypes
of each cause are their own Choices tag, ``cause_subtype_<cause id>``, shown only while that
cause is chosen (``visibleWhen="choice-selected"``); a plain ``cause_subtype`` is read too.
Import: a Label Studio JSON export; each task's latest non-cancelled annotation becomes one
record in ``labels/<rater>.jsonl``, its choices mapped through the codebook (display names,
ids and aliases all resolve). Errors name the task id and the value.
"""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from pipeline.codebook import DIMENSIONS, SUBTYPE_DIMENSION, Codebook
from pipeline.errors import UserError
from pipeline.labelling.issues import issue_text, load_issue, predictions_for
from pipeline.labelling.storage import LABEL_DIMENSIONS, LabelError, append_records, label_path, make_record, validate_label
from pipeline.sources import parse_issue_url

TO_NAME = "text"


def labeling_config(codebook: Codebook) -> str:
    """The Label Studio labelling config (XML) for the codebook's dimensions."""
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="$title")
    ET.SubElement(view, "Header", value="$url", size="6")
    ET.SubElement(view, "Header", value="$operators", size="6")  # operators the issue names
    ET.SubElement(view, "Text", name=TO_NAME, value="$text")
    for dim in DIMENSIONS:
        d = codebook.dimensions[dim]
        ET.SubElement(view, "Header", value=d.display)
        ch = ET.SubElement(view, "Choices", name=dim, toName=TO_NAME, choice="single", required="true",
                           requiredMessage=f"Choose a {dim}")
        for c in d.categories:
            ET.SubElement(ch, "Choice", value=c.display, hint=c.definition)
    # one subtype list per cause that has subtypes, shown only while that cause is chosen
    # (Label Studio's visibleWhen="choice-selected" + whenTagName + whenChoiceValue), so an
    # annotator is never offered another cause's subtypes
    for c in codebook.dimensions["cause"].categories:
        if not c.subtypes:
            continue
        box = ET.SubElement(view, "View", visibleWhen="choice-selected", whenTagName="cause", whenChoiceValue=c.display)
        ET.SubElement(box, "Header", value=f"{c.display}: subtype")
        sub = ET.SubElement(box, "Choices", name=subtype_tag(c.id), toName=TO_NAME, choice="single",
                            visibleWhen="choice-selected", whenTagName="cause", whenChoiceValue=c.display)
        for st in c.subtypes:
            ET.SubElement(sub, "Choice", value=st.display, hint=st.definition)
    ET.SubElement(view, "Header", value="Note")
    ET.SubElement(view, "TextArea", name="note", toName=TO_NAME, rows="2", maxSubmissions="1")
    ET.indent(view)
    return ET.tostring(view, encoding="unicode") + "\n"


def subtype_tag(cause: str) -> str:
    """Name of the Choices tag holding the subtypes of ``cause`` (e.g. ``cause_subtype_incompatibility``)."""
    return f"{SUBTYPE_DIMENSION}_{cause}"


def _result(name: str, display: str) -> dict:
    return {"id": name, "from_name": name, "to_name": TO_NAME, "type": "choices", "value": {"choices": [display]}}


def _label_result(codebook: Codebook, row: dict) -> list[dict]:
    out = []
    vals = {}
    for dim in LABEL_DIMENSIONS:
        val = row.get(dim)
        if val is None or (isinstance(val, float) and pd.isna(val)) or not str(val).strip():
            continue
        vals[dim] = str(val).strip()
    for dim, val in vals.items():
        if dim == SUBTYPE_DIMENSION:
            if not vals.get("cause"):
                continue  # a subtype means nothing without its cause
            out.append(_result(subtype_tag(vals["cause"]), codebook.display(dim, val)))
        else:
            out.append(_result(dim, codebook.display(dim, val)))
    return out


def export_tasks(urls: list[str], conn: sqlite3.Connection, codebook: Codebook,
                 labels: pd.DataFrame | None = None) -> list[dict]:
    """Label Studio tasks for ``urls``; pre-annotations from ``labels`` (if given) else from predictions."""
    by_url = {r["url"]: r for r in labels.to_dict("records")} if labels is not None else {}
    source = Path(labels.attrs.get("path", "labels")).name if labels is not None else ""
    tasks = []
    for i, url in enumerate(urls, start=1):
        view = load_issue(conn, url)
        task: dict = {"id": i, "data": {"url": url, "title": view.title or f"{view.repo}#{view.number}",
                                        "text": issue_text(view, conn) or url,
                                        "operators": " ".join(view.operators) or "(no operator named)"}}
        preds = []
        if url in by_url:
            result = _label_result(codebook, by_url[url])
            if result:
                preds.append({"model_version": f"labels:{source}", "result": result})
        else:
            p = predictions_for(conn, url)
            result = _label_result(codebook, {d: v["category"] for d, v in p.items() if d in LABEL_DIMENSIONS})
            if result:
                preds.append({"model_version": sorted({v["model_id"] for v in p.values()})[-1],
                              "score": min(v["probability"] for v in p.values()), "result": result})
        if preds:
            task["predictions"] = preds
        tasks.append(task)
    return tasks


def _latest_annotation(task: dict) -> dict | None:
    anns = [a for a in (task.get("annotations") or task.get("completions") or [])
            if isinstance(a, dict) and not a.get("was_cancelled")]
    if not anns:
        return None
    # latest edit wins; list order breaks ties
    return max(enumerate(anns), key=lambda ia: (str(ia[1].get("updated_at") or ia[1].get("created_at") or ""), ia[0]))[1]


def parse_export(path: Path | str, rater: str, codebook: Codebook) -> tuple[list[dict], int]:
    """Records from a Label Studio JSON export (validated) and the number of tasks without annotation."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: not a JSON file ({e})") from None
    if not isinstance(data, list):
        raise UserError(f"{p}: expected a Label Studio JSON export (a list of tasks)")
    records, skipped = [], 0
    for n, task in enumerate(data, start=1):
        if not isinstance(task, dict):
            raise UserError(f"{p}: entry {n} is not a task object")
        tid = task.get("id", f"#{n}")
        url = str((task.get("data") or {}).get("url") or "").strip()
        try:
            parse_issue_url(url)
        except ValueError as e:
            raise UserError(f"{p}: task {tid}: data.url: {e}") from None
        ann = _latest_annotation(task)
        if ann is None:
            skipped += 1
            continue
        raw: dict[str, str] = {}
        by_cause: dict[str, str] = {}  # subtype choices per cause tag (cause_subtype_<cause>)
        note = ""
        for r in ann.get("result") or []:
            name, value = str(r.get("from_name") or ""), r.get("value") or {}
            if name in LABEL_DIMENSIONS or name.startswith(SUBTYPE_DIMENSION + "_"):
                choices = value.get("choices") or []
                if len(choices) != 1:
                    raise UserError(f"{p}: task {tid}: {name}: expected one choice, got {choices!r}")
                if name in LABEL_DIMENSIONS:
                    raw[name] = str(choices[0])
                else:
                    by_cause[name[len(SUBTYPE_DIMENSION) + 1:]] = str(choices[0])
            elif name == "note":
                text = value.get("text") or []
                note = "\n".join(text) if isinstance(text, list) else str(text)
        label: dict[str, str] = {}
        for dim in DIMENSIONS:
            if dim in raw:
                try:
                    label[dim] = codebook.resolve(dim, raw[dim], by="name")
                except KeyError as e:
                    raise UserError(f"{p}: task {tid}: {dim}: {e.args[0]}") from None
        # the subtype list of the chosen cause wins; a list left from a cause chosen earlier is ignored
        if label.get("cause") in by_cause:
            raw[SUBTYPE_DIMENSION] = by_cause[label["cause"]]
        if SUBTYPE_DIMENSION in raw:
            cause = label.get("cause")
            try:
                label[SUBTYPE_DIMENSION] = codebook.resolve(SUBTYPE_DIMENSION, raw[SUBTYPE_DIMENSION], by="name",
                                                            cause=cause if cause else None)
            except KeyError as e:
                raise UserError(f"{p}: task {tid}: cause_subtype (cause {cause!r}): {e.args[0]}") from None
        try:
            valid = validate_label(label, codebook)
        except LabelError as e:
            raise UserError(f"{p}: task {tid}: {e}") from None
        records.append(make_record(url, valid, note=note, rater=rater, codebook=codebook))
    return records, skipped


def import_export(path: Path | str, rater: str, codebook: Codebook, labels_dir: Path) -> tuple[Path, int, int]:
    """Append the export's annotations to ``<labels_dir>/<rater>.jsonl`` (all or nothing).

    Returns the label file, the number of records written and of tasks skipped (no annotation).
    """
    out = label_path(labels_dir, rater)
    records, skipped = parse_export(path, rater, codebook)
    if records:
        append_records(out, records)
    return out, len(records), skipped
