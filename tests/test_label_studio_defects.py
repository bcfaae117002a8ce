"""The five defects found by trying the Label Studio export/import against a real Label Studio 1.23.2
(issue 9), each through the entry points a user has (`mine labels import`, the exported config and
tasks). The same behaviour is checked live in tests/test_label_studio_live.py."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from pipeline.codebook import load_codebook
from pipeline.labelling.labelstudio import export_tasks, labeling_config
from pipeline.labelling.storage import read_records
from pipeline.store.db import connect
from tests.helpers import run_mine
from tests.label_store import write_demo_store

URL1 = "https://github.com/pytorch/pytorch/issues/91001"
URL2 = "https://github.com/onnx/tensorflow-onnx/issues/2101"


def _choice(tag, value, rid="a1b2c3d4e5"):
    return {"value": {"choices": [value]}, "id": rid, "from_name": tag, "to_name": "text", "type": "choices",
            "origin": "manual"}


def _ann(aid, user, result, updated, cancelled=False):
    """An annotation as Label Studio 1.23's JSON export writes it (completed_by: the user's id)."""
    return {"id": aid, "completed_by": user, "result": result, "was_cancelled": cancelled, "ground_truth": False,
            "created_at": updated, "updated_at": updated, "lead_time": 9.5, "task": 1, "project": 1}


def test_1_subtype_choices_are_required_while_shown():
    """Label Studio accepted Incompatibility with no subtype; the import then rejected the whole file."""
    root = ET.fromstring(labeling_config(load_codebook()))
    subtype_lists = [c for c in root.iter("Choices") if c.get("name").startswith("cause_subtype_")]
    assert len(subtype_lists) == 2
    for c in subtype_lists:
        # enforced by Label Studio only while visible, i.e. while its cause is the chosen one
        assert c.get("required") == "true" and c.get("visibleWhen") == "choice-selected"
        assert c.get("requiredMessage", "").startswith("Choose a subtype of ")


def test_2_two_annotators_in_one_export_are_never_merged_silently(tmp_path):
    """Import kept the latest annotation of a task, whoever made it: one rater's labels were lost."""
    alice = [_choice("stage", "Export"), _choice("symptom", "Crash"), _choice("cause", "Typo")]
    bob = [_choice("stage", "Optimization"), _choice("symptom", "Hang"), _choice("cause", "Typo")]
    export = [{"id": 1, "data": {"url": URL1}, "annotations": [_ann(1, 1, alice, "2026-01-01T10:00:00Z"),
                                                                 _ann(2, 2, bob, "2026-01-02T10:00:00Z")]},
              {"id": 2, "data": {"url": URL2}, "annotations": [_ann(3, 1, alice, "2026-01-01T11:00:00Z")]}]
    f = tmp_path / "export.json"
    f.write_text(json.dumps(export))
    labels = tmp_path / "labels"
    res = run_mine("labels", "import", str(f), "--rater", "alice", "--labels-dir", str(labels))
    assert res.returncode == 2, res.stdout
    assert "annotations by 2 annotators (1 (2 tasks), 2 (1 tasks))" in res.stderr and "--annotator" in res.stderr
    assert not labels.exists()  # nothing written
    # one annotator at a time: each gets exactly their own labels
    for who, rater, expected in (("1", "alice", {URL1: "export", URL2: "export"}), ("2", "bob", {URL1: "optimization"})):
        res = run_mine("labels", "import", str(f), "--rater", rater, "--annotator", who, "--labels-dir", str(labels))
        assert res.returncode == 0, res.stderr
        assert {r["url"]: r["stage"] for r in read_records(labels / f"{rater}.jsonl")} == expected
    res = run_mine("labels", "import", str(f), "--rater", "carol", "--annotator", "7", "--labels-dir", str(labels))
    assert res.returncode == 2 and "no annotation by --annotator 7; annotators in this export: 1, 2" in res.stderr


def test_3_json_min_export_imports(tmp_path):
    """JSON-MIN failed with a misleading `task 1: data.url: not a GitHub issue URL: ''`."""
    # as label-studio-sdk's converter writes it: task data at the top level, one row per annotation
    rows = [
        {"url": URL1, "title": "t", "text": "x", "id": 1, "stage": "Node Conversion", "symptom": "Crash",
         "cause": "Incompatibility", "cause_subtype_incompatibility": "External", "note": "seen before",
         "annotator": 1, "annotation_id": 1, "created_at": "2026-01-01T10:00:00.1Z",
         "updated_at": "2026-01-01T10:00:00.1Z", "lead_time": 4.2},
        {"url": URL2, "title": "t", "text": "y", "id": 2, "annotator": None, "annotation_id": None,
         "created_at": None, "updated_at": None, "lead_time": None},   # a task nobody annotated
    ]
    f = tmp_path / "export-min.json"
    f.write_text(json.dumps(rows))
    res = run_mine("labels", "import", str(f), "--rater", "ann", "--labels-dir", str(tmp_path / "labels"))
    assert res.returncode == 0, res.stderr
    assert "appended 1 labels" in res.stdout and "1 tasks had no annotation" in res.stdout
    (rec,) = read_records(tmp_path / "labels" / "ann.jsonl")
    assert (rec["url"], rec["stage"], rec["cause"], rec["cause_subtype"], rec["note"]) == \
        (URL1, "node_conversion", "incompatibility", "external", "seen before")
    assert rec["timestamp"] == "2026-01-01T10:00:00.100+00:00"  # when the annotator saved it
    # a file that is neither format says so instead of blaming data.url
    f.write_text(json.dumps([{"id": 3, "stage": "Export"}]))
    res = run_mine("labels", "import", str(f), "--rater", "ann", "--labels-dir", str(tmp_path / "labels"))
    assert res.returncode == 2 and "neither data.url (JSON export) nor url (JSON-MIN export)" in res.stderr


def test_4_merged_class_is_not_exported_as_a_choice(tmp_path):
    """A pre-annotation of the classifier's merged bin became `Other`, no choice of the config."""
    db = tmp_path / "store.db"
    urls = write_demo_store(db, xss=False)[:2]
    conn = connect(db)
    with conn:
        for url, cause in zip(urls, ("other", "typo")):
            for dim, cat in (("stage", "export"), ("symptom", "crash"), ("cause", cause)):
                conn.execute("INSERT INTO predictions(url, dimension, category, probability, probs, model_id, created_at) "
                             "VALUES (?, ?, ?, 0.6, '{}', 'clf-9', '2026-01-01')", (url, dim, cat))
    cb = load_codebook()
    tasks = export_tasks(urls, conn, cb)
    conn.close()
    choices = {c.get("name"): {x.get("value") for x in c.findall("Choice")}
               for c in ET.fromstring(labeling_config(cb)).iter("Choices")}
    for t in tasks:
        for r in t["predictions"][0]["result"]:
            assert r["value"]["choices"][0] in choices[r["from_name"]], r
    got = [{r["from_name"]: r["value"]["choices"][0] for r in t["predictions"][0]["result"]} for t in tasks]
    assert got == [{"stage": "Export", "symptom": "Crash"}, {"stage": "Export", "symptom": "Crash", "cause": "Typo"}]
    assert {t["predictions"][0]["model_version"] for t in tasks} == {"clf-9"}


def test_5_issue_text_keeps_its_white_space():
    """Code in issue text lost its indentation: Label Studio's Text collapses white space."""
    root = ET.fromstring(labeling_config(load_codebook()))
    parents = {child: parent for parent in root.iter() for child in parent}
    text = root.find(".//Text")
    assert text.get("value") == "$text"
    assert "white-space: pre-wrap" in (parents[text].get("style") or "")
