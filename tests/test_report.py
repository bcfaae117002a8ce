"""`mine report` over the committed study labels reproduces the paper's Tables 8, 9, 10 and 14."""

import io
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from pipeline.codebook import load_codebook
from pipeline.label_files.files import read_labels
from pipeline.paths import labels_dir
from pipeline.report.render import render, write_all
from pipeline.report.tables import build_report
from tests.helpers import run_mine

# (tf2onnx, torch.onnx, total, rounded total percent) from ../shared/paper/README.md
TABLE_8 = {"load_model": (5, 6, 11, 6), "node_conversion": (70, 78, 148, 74), "optimization": (14, 5, 19, 10),
           "export": (1, 0, 1, 1), "validation": (0, 3, 3, 2), "not_distinguishable": (10, 8, 18, 9)}
TABLE_9 = {"crash": (50, 62, 112, 56), "wrong_model": (35, 30, 65, 33), "build_failure": (3, 2, 5, 3),
           "bad_performance": (2, 1, 3, 2), "hang": (0, 0, 0, 0), "unreported": (10, 5, 15, 8)}
TABLE_14 = {"incompatibility": (25, 32, 57), "type_problem": (25, 29, 54), "algorithmic_error": (18, 6, 24),
            "shape_problem": (9, 12, 21), "api_misuse": (6, 6, 12), "other_causes": (17, 15, 32)}
SUBTYPES = {("incompatibility", "external"): 55, ("incompatibility", "internal"): 2,
            ("incompatibility", "resource"): 0, ("type_problem", "node"): 46,
            ("type_problem", "conventional"): 5, ("type_problem", "tensor"): 3}
TABLE_10 = {("incompatibility", "crash"): (19, 28), ("type_problem", "wrong_model"): (17, 13),
            ("algorithmic_error", "wrong_model"): (10, 3)}


@pytest.fixture(scope="module")
def report_json() -> dict:
    res = run_mine("report", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def _rows(rep: dict, table: str) -> dict:
    return {r["category"]: r for r in rep["tables"][table]}


def test_json_contract(report_json):
    assert report_json["n"] == 200
    assert report_json["converters"] == ["tf2onnx", "torch.onnx"]
    cb = load_codebook()
    for dim in ("stage", "symptom", "cause"):
        assert [r["category"] for r in report_json["tables"][dim]] == cb.ids(dim), "every category, zeros included"
    for table in ("stage", "symptom", "cause", "cause_subtype", "cause_x_symptom"):
        for row in report_json["tables"][table]:
            assert set(row["counts"]) == set(row["share"]) == {"tf2onnx", "torch.onnx", "total"}


@pytest.mark.parametrize("table,expected", [("stage", TABLE_8), ("symptom", TABLE_9)])
def test_tables_8_and_9(report_json, table, expected):
    rows = _rows(report_json, table)
    for cat, (tf, pt, total, pct) in expected.items():
        assert rows[cat]["counts"] == {"tf2onnx": tf, "torch.onnx": pt, "total": total}, cat
        assert rows[cat]["share"]["total"] == pytest.approx(total / 200)
    node = rows.get("node_conversion")
    if node:
        assert node["share"] == {"tf2onnx": 0.7, "torch.onnx": 0.78, "total": 0.74}


def test_rounded_percentages_as_printed_in_the_paper():
    md = run_mine("report", "--format", "markdown").stdout
    for line, pct in [("| Node Conversion |", "148 (74%)"), ("| Wrong Model |", "65 (33%)"),
                      ("| Export |", "1 (1%)"), ("| Unreported |", "15 (8%)"), ("| Build Failure |", "5 (3%)")]:
        assert any(l.startswith(line) and pct in l for l in md.splitlines()), (line, pct)


def test_table_14_causes_and_subtypes(report_json):
    rows = _rows(report_json, "cause_binned")
    assert list(rows) == list(TABLE_14)
    for cat, (tf, pt, total) in TABLE_14.items():
        assert rows[cat]["counts"] == {"tf2onnx": tf, "torch.onnx": pt, "total": total}, cat
    subs = {(r["cause"], r["category"]): r["counts"]["total"] for r in report_json["tables"]["cause_subtype"]}
    assert subs == SUBTYPES


def test_table_10_cause_by_symptom(report_json):
    cells = {(r["category"], r["symptom"]): r["counts"] for r in report_json["tables"]["cause_x_symptom"]}
    for key, (tf, pt) in TABLE_10.items():
        assert (cells[key]["tf2onnx"], cells[key]["torch.onnx"]) == (tf, pt), key
    # every (binned) cause x (binned) symptom cell adds up to the 200 issues
    assert sum(c["total"] for c in cells.values()) == 200
    assert {s for _, s in cells} == {"crash", "wrong_model", "unreported", "other_symptoms"}


def test_every_format_and_out_dir(tmp_path: Path):
    rep = build_report(read_labels(labels_dir() / "study.csv"))
    latex = render(rep, "latex")
    assert r"\begin{tabular}" in latex and r"148 (74\%)" in latex
    cells = "\n".join(l for l in latex.splitlines() if not l.startswith(r"\label"))
    assert "_" not in cells.replace(r"\_", ""), "underscores in cells are escaped"
    tidy = pd.read_csv(io.StringIO(render(rep, "csv")))
    node = tidy[(tidy.table == "stage") & (tidy.category == "node_conversion")].set_index("column")
    assert node["count"].to_dict() == {"tf2onnx": 70, "torch.onnx": 78, "total": 148}
    assert set(tidy.table) == set(rep.tables)
    written = write_all(rep, tmp_path)
    names = {p.name for p in written}
    for table in ("stage", "symptom", "cause", "cause_subtype", "cause_x_symptom", "cause_x_stage"):
        assert {f"{table}.md", f"{table}.csv", f"{table}.tex", f"{table}.txt"} <= names
    assert "Total_count" in (tmp_path / "stage.csv").read_text()
    assert json.loads((tmp_path / "report.json").read_text())["n"] == 200


def test_terminal_table_and_bad_input(tmp_path: Path):
    res = run_mine("report")
    assert res.returncode == 0 and "Node Conversion" in res.stdout and "148 (74%)" in res.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("url,converter,stage\nhttps://github.com/pytorch/pytorch/issues/1,torch.onnx,nodes\n")
    res = run_mine("report", str(bad))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "bad.csv:2" in res.stderr and "'nodes'" in res.stderr and "node_conversion" in res.stderr
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    res = run_mine("report", str(empty))
    assert res.returncode == 2 and "empty.csv" in res.stderr and "Traceback" not in res.stderr


def test_report_reads_jsonl_sessions_latest_record_wins(tmp_path: Path):
    f = tmp_path / "ann.jsonl"
    rec = {"url": "https://github.com/pytorch/pytorch/issues/5", "stage": "export", "symptom": "crash",
           "cause": "typo", "cause_subtype": "", "rater": "ann", "codebook_version": "x", "timestamp": "t"}
    lines = [json.dumps(rec), json.dumps({**rec, "stage": "optimization"})]
    f.write_text("\n".join(lines) + "\n" + '{"url": "https://github.com/pytorch/pyt')  # torn last line
    res = run_mine("report", str(f), "--format", "json")
    assert res.returncode == 0, res.stderr
    rows = _rows(json.loads(res.stdout), "stage")
    assert rows["optimization"]["counts"]["total"] == 1 and rows["export"]["counts"]["total"] == 0


def test_table_10_pivoted_as_in_the_paper():
    md = run_mine("report", "--format", "markdown").stdout
    section = md.split("(Table 10)", 1)[1].split("###", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("|")]
    assert lines[0].startswith("| Cause | Crash: tf2onnx | Crash: torch.onnx | Wrong Model: tf2onnx |")
    rows = {l.split("|")[1].strip(): [c.strip() for c in l.split("|")[2:-1]] for l in lines[2:]}
    assert rows["Incompatibility"][:2] == ["19", "28"]
    assert rows["Type Problem"][2:4] == ["17", "13"]
    assert rows["Algorithmic Error"][2:4] == ["10", "3"]
    assert sum(int(r[-1]) for r in rows.values()) == 200
    latex = run_mine("report", "--format", "latex").stdout
    assert r"\multicolumn{2}{c}{Crash} & \multicolumn{2}{c}{Wrong Model}" in latex
    assert r"\cmidrule(lr){2-3}" in latex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex not installed (.ci/run installs texlive)")
def test_latex_output_compiles(tmp_path: Path):
    latex = run_mine("report", "--format", "latex").stdout
    doc = tmp_path / "tables.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[margin=1cm,landscape]{geometry}\n"
                   "\\begin{document}\n" + latex + "\\end{document}\n")
    res = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]
    assert (tmp_path / "tables.pdf").stat().st_size > 0
