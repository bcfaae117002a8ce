"""Label Studio interop: config from the codebook, tasks with pre-annotations, and a round trip
export -> (annotate in Label Studio) -> import that reproduces the labels."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import typer
from typer.testing import CliRunner

from pipeline.codebook import load_codebook
from pipeline.errors import UserError
from pipeline.labelling.commands import register
from tests.label_store import write_demo_store
from pipeline.labelling.labelstudio import export_tasks, labeling_config
from pipeline.labelling.labelstudio_import import import_export
from pipeline.labelling.storage import LabelStore, read_records
from pipeline.label_files.files import read_labels
from pipeline.store.db import connect

LABELS = [
    {"stage": "node_conversion", "symptom": "crash", "cause": "incompatibility", "cause_subtype": "external"},
    {"stage": "optimization", "symptom": "wrong_model", "cause": "algorithmic_error", "cause_subtype": ""},
    {"stage": "export", "symptom": "crash", "cause": "type_problem", "cause_subtype": "tensor"},
]


def _as_annotated(tasks: list[dict]) -> list[dict]:
    """What Label Studio exports after annotators accept the pre-annotations."""
    out = []
    for t in tasks:
        result = [dict(r) for r in t.get("predictions", [{}])[0].get("result", [])]
        result.append({"from_name": "note", "to_name": "text", "type": "textarea", "value": {"text": [f"task {t['id']}"]}})
        out.append({**t, "annotations": [
            {"id": 1, "was_cancelled": True, "result": [], "updated_at": "2030-01-01T00:00:00Z"},
            {"id": 2, "result": result, "updated_at": "2024-01-01T00:00:00Z"}]})
    return out


@pytest.fixture
def labelled(tmp_path):
    db = tmp_path / "store.db"
    urls = write_demo_store(db, xss=False)[:3]
    store = LabelStore(tmp_path / "labels", "alice", load_codebook())
    for url, lab in zip(urls, LABELS):
        store.save(url, lab)
    return db, urls, store.path


def test_config_lists_every_category_of_the_codebook():
    cb = load_codebook()
    root = ET.fromstring(labeling_config(cb))
    choices = {c.get("name"): [x.get("value") for x in c.findall("Choice")] for c in root.iter("Choices")}
    assert set(choices) == {"stage", "symptom", "cause", "cause_subtype_incompatibility", "cause_subtype_type_problem"}
    for dim in ("stage", "symptom", "cause"):
        assert choices[dim] == [c.display for c in cb.dimensions[dim].categories]
    # each cause offers only its own subtypes, and only while it is the chosen cause
    assert choices["cause_subtype_incompatibility"] == ["Internal", "External", "Resource"]
    assert choices["cause_subtype_type_problem"] == ["Node", "Tensor", "Conventional"]
    for c in root.iter("Choices"):
        if c.get("name").startswith("cause_subtype"):
            assert (c.get("visibleWhen"), c.get("whenTagName")) == ("choice-selected", "cause")
    assert {c.get("whenChoiceValue") for c in root.iter("Choices") if c.get("whenChoiceValue")} == {"Incompatibility", "Type Problem"}
    assert all(c.get("toName") == "text" for c in root.iter("Choices"))
    assert root.find(".//Text").get("value") == "$text"


def test_subtype_of_the_chosen_cause_wins_over_a_stale_one(tmp_path):
    """An annotator picks Incompatibility -> External, then changes the cause to Type Problem -> Tensor:
    the export may hold both subtype lists; the one of the final cause is the label."""
    cb = load_codebook()
    f = tmp_path / "export.json"
    f.write_text(json.dumps(_one_task([
        _choice("stage", "Export"), _choice("symptom", "Crash"), _choice("cause", "Type Problem"),
        _choice("cause_subtype_incompatibility", "External"), _choice("cause_subtype_type_problem", "Tensor")])))
    out, n, _, _ = import_export(f, "bob", cb, tmp_path / "labels")
    rec = read_records(out)[0]
    assert n == 1 and (rec["cause"], rec["cause_subtype"]) == ("type_problem", "tensor")


def test_round_trip_reproduces_the_labels(tmp_path, labelled):
    db, urls, path = labelled
    cb = load_codebook()
    conn = connect(db)
    tasks = export_tasks(urls, conn, cb, read_labels(path))
    conn.close()
    assert [t["data"]["url"] for t in tasks] == urls
    assert "bicubic" in tasks[0]["data"]["text"] and tasks[0]["data"]["title"].startswith("ONNX export")
    assert all(t["predictions"][0]["result"] for t in tasks)
    # every pre-annotation names a Choices tag of the config, with one of its values
    tags = {c.get("name"): {x.get("value") for x in c.findall("Choice")} for c in ET.fromstring(labeling_config(cb)).iter("Choices")}
    for t in tasks:
        for r in t["predictions"][0]["result"]:
            assert r["type"] == "choices" and r["to_name"] == "text"
            assert r["value"]["choices"][0] in tags[r["from_name"]], r
    assert {"from_name": "cause_subtype_incompatibility", "value": {"choices": ["External"]}}.items() <= \
        {k: v for r in tasks[0]["predictions"][0]["result"] if r["from_name"].startswith("cause_subtype") for k, v in r.items()}.items()
    export = tmp_path / "ls-export.json"
    export.write_text(json.dumps(_as_annotated(tasks)))
    out, n, empty, skipped = import_export(export, "ls_bob", cb, tmp_path / "labels")
    assert (n, empty, skipped) == (3, 0, [])
    back = read_labels(out).set_index("url")
    orig = read_labels(path).set_index("url")
    for col in ("stage", "symptom", "cause", "cause_subtype"):
        assert back[col].fillna("").to_dict() == orig[col].fillna("").to_dict()
    assert [r["note"] for r in read_records(out)] == ["task 1", "task 2", "task 3"]


def test_classifier_predictions_become_pre_annotations(tmp_path):
    db = tmp_path / "store.db"
    urls = write_demo_store(db, xss=False)
    conn = connect(db)
    with conn:
        conn.execute("INSERT INTO predictions(url, dimension, category, probability, probs, model_id, created_at) "
                     "VALUES (?, 'symptom', 'hang', 0.7, '{}', 'clf-1', '2024')", (urls[0],))
    tasks = export_tasks(urls[:2], conn, load_codebook())
    conn.close()
    assert tasks[0]["predictions"][0]["result"][0]["value"] == {"choices": ["Hang"]}
    assert tasks[0]["predictions"][0]["model_version"] == "clf-1"
    assert "predictions" not in tasks[1]


def _one_task(result, tid=42):
    return [{"id": tid, "data": {"url": "https://github.com/pytorch/pytorch/issues/5"},
             "annotations": [{"id": 1, "result": result}]}]


def _choice(dim, value):
    return {"from_name": dim, "to_name": "text", "type": "choices", "value": {"choices": [value]}}


def test_import_errors_name_task_and_value_and_write_nothing(tmp_path):
    cb = load_codebook()
    f = tmp_path / "export.json"
    f.write_text(json.dumps(_one_task([_choice("stage", "Warp Drive"), _choice("symptom", "Crash"), _choice("cause", "Typo")])))
    with pytest.raises(UserError, match=r"task 42: stage: 'Warp Drive'"):
        import_export(f, "bob", cb, tmp_path / "labels")
    f.write_text(json.dumps(_one_task([_choice("stage", "Export"), _choice("symptom", "Crash"), _choice("cause", "Incompatibility")], 7)))
    with pytest.raises(UserError, match=r"task 7: cause_subtype is missing"):
        import_export(f, "bob", cb, tmp_path / "labels")
    f.write_text(json.dumps(_one_task([_choice("stage", "Export"), _choice("symptom", "Crash"), _choice("cause", "Incompatibility"),
                                       _choice("cause_subtype", "Tensor")], 9)))
    with pytest.raises(UserError, match=r"task 9: cause_subtype.*'Tensor'"):
        import_export(f, "bob", cb, tmp_path / "labels")
    assert not (tmp_path / "labels" / "bob.jsonl").exists()
    # aliases and ids resolve too (the study's spellings)
    f.write_text(json.dumps(_one_task([_choice("stage", "Node Transformation"), _choice("symptom", "crash"), _choice("cause", "typo")])))
    _, n, _, _ = import_export(f, "bob", cb, tmp_path / "labels")
    assert n == 1 and read_records(tmp_path / "labels" / "bob.jsonl")[0]["stage"] == "node_conversion"


def test_cli_export_and_import(tmp_path, labelled):
    db, urls, path = labelled
    app = typer.Typer()
    register(app)
    queue = tmp_path / "q.txt"
    queue.write_text("\n".join(urls) + "\n")
    out = tmp_path / "ls" / "tasks.json"
    r = CliRunner().invoke(app, ["labels", "export", "--format", "label-studio", "--queue", str(queue),
                                 "--db", str(db), "--out", str(out), "--labels", str(path)])
    assert r.exit_code == 0, r.output
    assert "<Choices" in r.output and out.with_suffix(".config.xml").is_file()
    tasks = json.loads(out.read_text())
    assert len(tasks) == 3
    annotated = tmp_path / "annotated.json"
    annotated.write_text(json.dumps(_as_annotated(tasks)))
    r = CliRunner().invoke(app, ["labels", "import", str(annotated), "--rater", "carol", "--labels-dir", str(tmp_path / "labels")])
    assert r.exit_code == 0, r.output
    assert len(read_labels(tmp_path / "labels" / "carol.jsonl")) == 3
    r = CliRunner().invoke(app, ["labels", "import", str(annotated), "--rater", "../evil"])
    assert isinstance(r.exception, UserError)


def test_rater_names_from_annotators():
    from pipeline.labelling.labelstudio_import import rater_names
    from pipeline.labelling.storage import validate_rater

    names = rater_names({"1": "alice@lab.org", "2": "alice@other.org", "3": "bob..x+tag@lab.org", "4": "", "5": "Ünï@x.y"})
    assert names == {"1": "alice_at_lab.org", "2": "alice_at_other.org", "3": "bob.x-tag", "4": "annotator-4", "5": "Uni"}
    assert all(validate_rater(n) == n for n in names.values())
