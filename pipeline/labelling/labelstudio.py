"""Label Studio interop, outbound: the labelling config from the codebook, and tasks with pre-annotations.

One task per issue, ``data = {url, title, text, operators}`` (:func:`task_data`; ``operators``:
the ``namespace:Name`` list the issue names, shown as a header), with pre-annotations
(``predictions``) from a label file or from the classifier's latest run, tagged with the model
id. Choices carry the codebook's display names; the subtypes of each cause are their own
Choices tag, ``cause_subtype_<cause id>``, shown (and required) only while that cause is
chosen. The way back, annotations into label files, is :mod:`pipeline.labelling.labelstudio_import`;
live sync with a server is :mod:`pipeline.labelling.labelstudio_sync`.
"""

from __future__ import annotations

import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd

from pipeline.codebook import DIMENSIONS, SUBTYPE_DIMENSION, Codebook
from pipeline.labelling.issues import issue_text, load_issue

TO_NAME = "text"
# Label Studio's Text tag collapses white space: code and tracebacks lost their indentation
TEXT_STYLE = "white-space: pre-wrap"


def labeling_config(codebook: Codebook) -> str:
    """The Label Studio labelling config (XML) for the codebook's dimensions."""
    view = ET.Element("View")
    ET.SubElement(view, "Header", value="$title")
    ET.SubElement(view, "Header", value="$url", size="6")
    ET.SubElement(view, "Header", value="$operators", size="6")  # operators the issue names
    text_box = ET.SubElement(view, "View", style=TEXT_STYLE)
    ET.SubElement(text_box, "Text", name=TO_NAME, value="$text")
    for dim in DIMENSIONS:
        d = codebook.dimensions[dim]
        ET.SubElement(view, "Header", value=d.display)
        ch = ET.SubElement(view, "Choices", name=dim, toName=TO_NAME, choice="single", required="true",
                           requiredMessage=f"Choose a {dim}")
        for c in d.categories:
            ET.SubElement(ch, "Choice", value=c.display, hint=c.definition)
    # one subtype list per cause that has subtypes, shown only while that cause is chosen
    # (Label Studio's visibleWhen="choice-selected" + whenTagName + whenChoiceValue), so an
    # annotator is never offered another cause's subtypes. required="true" is enforced only
    # while the list is visible: exactly "a subtype when the cause has subtypes".
    for c in codebook.dimensions["cause"].categories:
        if not c.subtypes:
            continue
        box = ET.SubElement(view, "View", visibleWhen="choice-selected", whenTagName="cause", whenChoiceValue=c.display)
        ET.SubElement(box, "Header", value=f"{c.display}: subtype")
        sub = ET.SubElement(box, "Choices", name=subtype_tag(c.id), toName=TO_NAME, choice="single",
                            required="true", requiredMessage=f"Choose a subtype of {c.display}",
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


def label_result(codebook: Codebook, row: dict) -> list[dict]:
    """Label Studio result items for a label (ids per dimension); values outside the codebook are left out.

    A classifier's merged bin (``other``) or a category of an older codebook is no choice of the
    config: Label Studio would drop it silently, and its "create annotations from predictions"
    would copy it into an annotation the import then rejects. That dimension is left open
    (and a subtype without a valid cause is dropped with it).
    """
    vals: dict[str, str] = {}
    for dim in DIMENSIONS:
        val = _text(row.get(dim))
        if val and val in codebook.ids(dim):
            vals[dim] = val
    sub = _text(row.get(SUBTYPE_DIMENSION))
    if sub and vals.get("cause") and sub in codebook.subtypes(vals["cause"]):
        vals[SUBTYPE_DIMENSION] = sub
    out = [_result(dim, codebook.display(dim, val)) for dim, val in vals.items() if dim != SUBTYPE_DIMENSION]
    if SUBTYPE_DIMENSION in vals:
        out.append(_result(subtype_tag(vals["cause"]), codebook.display(SUBTYPE_DIMENSION, vals[SUBTYPE_DIMENSION])))
    return out


def _text(val: object) -> str:
    if val is None or (isinstance(val, float) and pd.isna(val)):
        return ""
    return str(val).strip()


def model_predictions(conn: sqlite3.Connection, codebook: Codebook, model_id: str | None = None) -> dict[str, dict]:
    """Pre-annotations from the classifier's latest ``mine classify`` run (or ``model_id``'s):
    ``{url: {"model_version": model id, "score": lowest top probability, "result": [...]}}``.

    Issues whose every prediction is outside the codebook get none (see :func:`label_result`).
    """
    from pipeline.classify.predict import predictions_for

    preds = predictions_for(conn, model_id)
    out: dict[str, dict] = {}
    for url, rows in preds.groupby("url", sort=False):
        result = label_result(codebook, dict(zip(rows["dimension"], rows["category"])))
        if result:
            out[url] = {"model_version": str(rows["model_id"].iloc[0]),
                        "score": round(float(rows["probability"].min()), 6), "result": result}
    return out


def task_data(conn: sqlite3.Connection, url: str) -> dict:
    """The task's ``data``: what Label Studio shows and keys the task by (``url``)."""
    view = load_issue(conn, url)
    return {"url": url, "title": view.title or f"{view.repo}#{view.number}", "text": issue_text(view, conn) or url,
            "operators": " ".join(view.operators) or "(no operator named)"}


def export_tasks(urls: list[str], conn: sqlite3.Connection, codebook: Codebook,
                 labels: pd.DataFrame | None = None) -> list[dict]:
    """Label Studio tasks for ``urls``; pre-annotations from ``labels`` (if given) else from predictions."""
    by_url = {r["url"]: r for r in labels.to_dict("records")} if labels is not None else {}
    source = Path(labels.attrs.get("path", "labels")).name if labels is not None else ""
    predicted = model_predictions(conn, codebook) if labels is None else {}
    tasks = []
    for i, url in enumerate(urls, start=1):
        task: dict = {"id": i, "data": task_data(conn, url)}
        if url in by_url:
            result = label_result(codebook, by_url[url])
            if result:
                task["predictions"] = [{"model_version": f"labels:{source}", "result": result}]
        elif url in predicted:
            task["predictions"] = [predicted[url]]
        tasks.append(task)
    return tasks
