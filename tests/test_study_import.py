"""Import of the study's spreadsheets: the committed label files are exactly what the sheets say,
and bad input stops with one line naming the fault (exit code 2, no traceback)."""

import shutil
from pathlib import Path

import openpyxl
import pandas as pd

from pipeline.label_files.study_import import import_study
from pipeline.paths import labels_dir
from tests.helpers import paper_dir, run_mine

STEMS = ["study", "pilot-r1", "pilot-r2", "drift-a", "drift-b"]


def test_reimport_matches_committed_label_files(tmp_path: Path):
    res = run_mine("import-study", str(paper_dir()), "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    for stem in STEMS:
        fresh = (tmp_path / f"{stem}.csv").read_text()
        committed = (labels_dir() / f"{stem}.csv").read_text()
        assert fresh == committed, f"{stem}.csv differs from a fresh import"


def test_label_files_hold_no_titles():
    for stem in STEMS:
        df = pd.read_csv(labels_dir() / f"{stem}.csv")
        assert "title" not in {c.lower() for c in df.columns}


def test_sizes_and_keys():
    res = import_study(paper_dir(), write=False)
    assert {k: len(v) for k, v in res.tables.items()} == {
        "study": 200, "drift-a": 18, "drift-b": 18, "pilot-r1": 60, "pilot-r2": 60}
    study = res.tables["study"]
    assert study["url"].is_unique
    assert study.groupby("converter").size().to_dict() == {"tf2onnx": 100, "torch.onnx": 100}
    assert set(study["repo"]) == {"onnx/tensorflow-onnx", "pytorch/pytorch"}
    # codes learned from the named sheets agree with the README's warning: 12 = Others, 14 = Testing
    assert res.code_maps["cause"][12] == "others" and res.code_maps["cause"][14] == "testing"
    assert len(res.titles) >= 200


def _copy(tmp_path: Path) -> Path:
    d = tmp_path / "paper"
    shutil.copytree(paper_dir(), d)
    for f in d.iterdir():
        f.chmod(0o644)
    return d


def _edit(path: Path, sheet: str, cell: str, value) -> None:
    # data_only: the name columns are formulas over the code columns; keep their cached values
    wb = openpyxl.load_workbook(path, data_only=True)
    wb[sheet][cell] = value
    wb.save(path)


def _assert_one_line_error(res, *needles: str) -> None:
    assert res.returncode == 2, (res.stdout, res.stderr)
    err = res.stderr.strip()
    assert "Traceback" not in res.stderr
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err


def test_unknown_category_names_sheet_row_column_and_choices(tmp_path: Path):
    d = _copy(tmp_path)
    _edit(d / "FailureAnalysis.xlsx", "PyTorch", "J5", "Node Frobnication")  # Component, 4th data row
    res = run_mine("import-study", str(d), "--out", str(tmp_path / "out"))
    _assert_one_line_error(res, "FailureAnalysis.xlsx", "'PyTorch'", "row 5", "column J", "'Component'",
                           "Node Frobnication", "node_conversion")
    assert not (tmp_path / "out").exists(), "nothing is written when the import fails"


def test_unmappable_code_in_drift_sheet(tmp_path: Path):
    d = _copy(tmp_path)
    _edit(d / "FailureAnalysis.xlsx", "TF Drift Testing", "F3", 9)  # rater A symptom code: no such code
    res = run_mine("import-study", str(d), "--out", str(tmp_path / "out"))
    _assert_one_line_error(res, "'TF Drift Testing'", "row 3", "column F", "code 9", "valid:")


def test_missing_column(tmp_path: Path):
    d = _copy(tmp_path)
    _edit(d / "PilotStudy.xlsx", "PyTorch Issues - R1", "H1", "Symptomz")
    res = run_mine("import-study", str(d), "--out", str(tmp_path / "out"))
    _assert_one_line_error(res, "PilotStudy.xlsx", "missing column", "'Symptoms'")


def test_empty_file_and_not_a_spreadsheet(tmp_path: Path):
    d = _copy(tmp_path)
    (d / "PilotStudy.xlsx").write_bytes(b"")
    res = run_mine("import-study", str(d), "--out", str(tmp_path / "out"))
    _assert_one_line_error(res, "PilotStudy.xlsx", "empty")
    (d / "PilotStudy.xlsx").write_text("id,Title,URL\n1,x,y\n")
    res = run_mine("import-study", str(d), "--out", str(tmp_path / "out"))
    _assert_one_line_error(res, "PilotStudy.xlsx", "not an .xlsx spreadsheet")


def test_missing_directory():
    res = run_mine("import-study", "/nonexistent/paper")
    _assert_one_line_error(res, "/nonexistent/paper", "not a directory")
