"""`mine agree`: Cohen's kappa of the pilot (0.90 causes, 0.95 symptoms) and the perfect drift check."""

import json
from pathlib import Path

from tests.helpers import run_mine


def _agree(a: str, b: str) -> dict:
    res = run_mine("agree", f"labels/{a}", f"labels/{b}", "--format", "json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_pilot_kappa_pooled_over_60():
    res = _agree("pilot-r1.csv", "pilot-r2.csv")
    assert res["n"] == 60
    assert set(res["dimensions"]) == {"cause", "symptom"}
    assert round(res["dimensions"]["cause"]["kappa"], 2) == 0.90
    assert round(res["dimensions"]["symptom"]["kappa"], 2) == 0.95
    assert res["dimensions"]["cause"]["n"] == 60
    assert len(res["dimensions"]["cause"]["disagreements"]) == 5
    assert len(res["dimensions"]["symptom"]["disagreements"]) == 2


def test_drift_agrees_perfectly():
    res = _agree("drift-a.csv", "drift-b.csv")
    assert res["n"] == 18
    for dim in ("stage", "symptom", "cause"):
        d = res["dimensions"][dim]
        assert d["kappa"] == 1.0 and d["agreement"] == 1.0 and d["disagreements"] == []


def test_table_output_lists_disagreements():
    res = run_mine("agree", "labels/pilot-r1.csv", "labels/pilot-r2.csv")
    assert res.returncode == 0
    assert "0.90" in res.stdout and "0.95" in res.stdout
    assert "https://github.com/pytorch/pytorch/issues/15192" in res.stdout


def test_disjoint_files_error(tmp_path: Path):
    other = tmp_path / "o.csv"
    other.write_text("url,cause\nhttps://github.com/pytorch/pytorch/issues/999999,typo\n")
    res = run_mine("agree", "labels/pilot-r1.csv", str(other))
    assert res.returncode == 2 and "share no issue URL" in res.stderr and "Traceback" not in res.stderr
