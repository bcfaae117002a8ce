"""Operator tables (pipeline.report.operators): counts, bins, Wilson intervals, lift; every format; the
study's labelled issues; a crawl of the emulator with estimates."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from pipeline.operators.extract import Operator
from pipeline.paths import shared_dir
from pipeline.report.estimate import StoreData, wilson
from pipeline.report.operators import operator_report
from tests.helpers import paper_dir, run_mine


def _data() -> tuple[StoreData, dict]:
    rows = [  # url, converter, year, stage, symptom, operators
        ("u1", "tf2onnx", "2020", "node_conversion", "wrong_model", ["onnx:Resize", "onnx:Cast"]),
        ("u2", "tf2onnx", "2021", "node_conversion", "wrong_model", ["onnx:Resize", "onnx:Cast"]),
        ("u3", "torch.onnx", "2021", "node_conversion", "crash", ["onnx:Resize"]),
        ("u4", "torch.onnx", "2022", "optimization", "wrong_model", ["aten:roll"]),
        ("u5", "torch.onnx", "2022", "node_conversion", "crash", []),
        ("u6", "tf2onnx", "2022", "load_model", "crash", ["tf:Bincount"]),
    ]
    issues = pd.DataFrame([{"url": u, "converter": c, "created_at": f"{y}-05-01T00:00:00Z", "title": "",
                            "stage": st, "symptom": sy, "cause": "others"} for u, c, y, st, sy, _ in rows])
    ops = {u: [Operator.parse(o) for o in o_] for u, *_, o_ in rows}
    return StoreData(issues, issues[["url", "converter", "stage", "symptom", "cause"]]), ops


def test_gold_tables_count_issues_per_operator_stage_and_symptom():
    data, ops = _data()
    rep = operator_report(data, ops, "gold", top_n=2, min_count=2)
    by_conv = {r["category"]: r["counts"] for r in rep.tables["operators_by_converter"]}
    assert by_conv["onnx:Resize"] == {"tf2onnx": 2, "torch.onnx": 1, "total": 3}
    assert by_conv["onnx:Cast"]["total"] == 2
    assert by_conv["other_operators"]["total"] == 2 and by_conv["no_operator"]["total"] == 1
    stage = {(r["category"], r["stage"]): r["counts"]["total"] for r in rep.tables["operator_x_stage"]}
    assert stage[("onnx:Resize", "node_conversion")] == 3
    assert stage[("other_operators", "optimization")] == 1 and stage[("other_operators", "load_model")] == 1
    wm = {r["category"]: r for r in rep.tables["operator_wrong_model"]}
    assert list(wm) == ["onnx:Cast", "onnx:Resize"]  # highest share first; roll and Bincount under min_count
    assert wm["onnx:Resize"]["counts"]["total"] == 2 and wm["onnx:Resize"]["share"]["total"] == round(2 / 3, 4)
    assert wm["onnx:Resize"]["ci"]["total"] == [round(x, 4) for x in wilson(2, 3)]
    for name, rows in rep.tables.items():
        expected = "count" if name in ("operators_by_converter", "operators_by_year") else "gold"
        assert {r["method"] for r in rows} == {expected}, name


def test_pairs_lift_over_the_wrong_model_issues():
    data, ops = _data()
    rep = operator_report(data, ops, "gold", top_n=2, min_pair=2)
    (pair,) = rep.tables["operator_pairs"]
    # 3 wrong-model issues; Cast in 2, Resize in 2, both in 2: lift = 2 * 3 / (2 * 2)
    assert pair["pair"] == ["onnx:Cast", "onnx:Resize"]
    assert pair["counts"] == {"together": 2, "first": 2, "second": 2, "wrong_model": 3}
    assert pair["lift"] == 1.5


def test_operators_per_year_with_first_year():
    data, ops = _data()
    rep = operator_report(data, ops, "gold", top_n=1)
    rows = rep.tables["operators_by_year"]
    assert [(r["period"], r["counts"]["total"]) for r in rows] == [("2020", 1), ("2021", 2)]
    assert {r["first_year"] for r in rows} == {"2020"}


def test_every_format_renders_and_escapes(tmp_path):
    from pipeline.report.operators_render import operator_figures, render_operators, write_operator_files

    data, ops = _data()
    ops["u6"] = [Operator("tf", "<script>x</script>")]
    rep = operator_report(data, ops, "gold", top_n=5)
    md = render_operators(rep, "markdown")
    assert "### Operator by stage" in md and "&lt;script&gt;" in md
    assert render_operators(rep, "csv").splitlines()[0].startswith("table,operator,stage,symptom,period,column,count")
    assert r"\begin{tabular}" in render_operators(rep, "latex") and r"\textless{}script" in render_operators(rep, "latex")
    assert json.loads(render_operators(rep, "json"))["tables"]["operators_by_converter"]
    figs = operator_figures(rep)
    page = render_operators(rep, "html", figs)
    assert "<script>x</script>" not in page and "&lt;script&gt;" in page and "data:image/png;base64," in page
    written = write_operator_files(rep, tmp_path / "out")
    names = {p.name for p in written}
    assert {"operator_x_symptom.png", "operator_x_symptom.svg", "operators.html", "operators.json",
            "operator_x_stage.tex", "operators_by_converter.md"} <= names


def _study_store(tmp_path):
    """A store holding the study's real issue text (150) through the store's own writes, plus the
    200 titles `mine import-study --db` records."""
    from pipeline.sources import converter_for_repo
    from pipeline.store.crawlstore import save_issue
    from pipeline.store.db import connect

    f = shared_dir() / "github-issues" / "study-issues.jsonl"
    if not f.is_file():
        pytest.skip(f"real issue text not found at {f} (../shared is only on project machines and CI)")
    paper = paper_dir()
    db = tmp_path / "study.db"
    conn = connect(db)
    for line in f.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        created = f"{r['created_at']}T00:00:00Z" if r.get("created_at") else None
        fields = {"repo": r["repo"], "number": r["number"], "source": converter_for_repo(r["repo"]), "url": r["url"],
                  "title": r["title"], "body": r["body"], "state": r["state"], "labels": json.dumps(r["labels"]),
                  "is_pull": 0, "created_at": created, "updated_at": created or "2024-01-01T00:00:00Z",
                  "closed_at": None, "raw": json.dumps({"number": r["number"], "user": {"login": r["author"] or ""}})}
        events = [{"seq": i, "event": "commented", "created_at": c.get("created_at"),
                   "raw": json.dumps({"event": "commented", "body": c.get("body")})} for i, c in enumerate(r["comments"])]
        save_issue(conn, fields, events, fetched_at="2024-01-01T00:00:00Z")
    conn.close()
    res = run_mine("import-study", str(paper), "--db", str(db), "--out", str(tmp_path / "labels"))
    assert res.returncode == 0, res.stderr
    return db


def test_study_operator_x_stage_shows_node_conversion_spread_over_operators(tmp_path):
    db = _study_store(tmp_path)
    res = run_mine("report", "operators", "--db", str(db), "--format", "json")
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["n"] == 200 and rep["source"] == "gold"
    node = [r for r in rep["tables"]["operator_x_stage"] if r["stage"] == "node_conversion"]
    spread = [r for r in node if r["counts"]["total"] > 0 and r["category"] != "other_operators"]
    assert len(spread) >= 5  # node-conversion failures spread over many operators
    named = next(r for r in rep["tables"]["operators_by_converter"] if r["category"] == "no_operator")
    assert named["counts"]["total"] < 200  # title-only issues were extracted from their titles too
    for fmt in ("table", "markdown", "csv", "latex", "html"):
        out = run_mine("report", "operators", "--db", str(db), "--format", fmt)
        assert out.returncode == 0, (fmt, out.stderr)
        assert "Node Conversion" in out.stdout or "node_conversion" in out.stdout, fmt
    page = run_mine("report", "--db", str(db), "--format", "html")  # the main report has an operator section
    assert page.returncode == 0 and '<h2 id="operators">Operators</h2>' in page.stdout and "t-operator_x_stage" in page.stdout


@pytest.mark.slow
def test_report_operators_over_an_emulator_crawl_estimates_the_unlabelled(tmp_path, emulator):
    paper = paper_dir()
    db = tmp_path / "crawl.db"
    assert run_mine("crawl", "--api-url", emulator.url, "--db", str(db)).returncode == 0
    res = run_mine("import-study", str(paper), "--db", str(db), "--out", str(tmp_path / "labels"))
    assert res.returncode == 0, res.stderr
    res = run_mine("report", "operators", "--db", str(db), "--from", "both", "--bootstrap", "50", "--format", "json",
                   timeout=900)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["source"] == "both"
    assert {r["method"] for r in rep["tables"]["operator_x_stage"]} == {"rpcc"}
    by_conv = rep["tables"]["operators_by_converter"]
    assert by_conv[0]["counts"]["total"] > 0 and by_conv[0]["method"] == "count"
    assert any("rpcc" in n for n in rep["notes"])
