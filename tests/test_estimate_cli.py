"""`mine validate-estimates` on the study and `mine report --from predicted|both` over a crawled store."""

from __future__ import annotations

import json

import pytest

from tests.helpers import run_mine


@pytest.mark.slow
def test_validate_estimates_meets_the_done_criteria(study_store):
    proc = run_mine("validate-estimates", "--db", str(study_store), "--format", "json", "--bootstrap", "400")
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    s = res["summary"]
    # the reports' own setting (real text, corrected per text kind), beside pooled calibration and titles only
    assert s["setting"] == "full/matched" and set(s["settings"]) == {"full/matched", "full/pooled", "title/matched"}
    rows = res["rows"]
    assert {r["text"] for r in rows} == {"full", "title"}
    assert all(r["target_full_text"] > 50 for r in rows if r["text"] == "full")
    chosen = s["chosen_method"]
    # the corrected estimate is no worse than plain counting on average ...
    assert s["mean_abs_error_pp"][chosen] <= s["mean_abs_error_pp"]["cc"]
    assert s["corrected_not_worse_than_counting"]
    # ... and node conversion and wrong model lie inside their 95% intervals in both directions
    assert len(s["key_shares"]) == 4 and all(k["inside"] for k in s["key_shares"])
    assert {(r["train"], r["target"]) for r in rows} == {("tf2onnx", "torch.onnx"), ("torch.onnx", "tf2onnx")}
    assert {r["dimension"] for r in rows} == {"stage", "symptom"}
    assert {r["method"] for r in rows} == {"cc", "pcc", "rpcc", "acc", "pacc"}


@pytest.mark.slow
@pytest.mark.parametrize("emulator", [{"issues": 80}], indirect=True)
def test_report_from_both_over_a_crawled_store(emulator, tmp_path):
    """No ../shared needed: the shipped model classifies the crawled issues."""
    db, out = tmp_path / "m.db", tmp_path / "out"
    assert run_mine("crawl", "--api-url", emulator.url, "--db", str(db)).returncode == 0
    proc = run_mine("report", "--from", "both", "--db", str(db), "--out", str(out), "--format", "json",
                    "--bootstrap", "100")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rep = json.loads(proc.stdout)
    assert rep["source"] == "both" and rep["n"] > 0
    assert any("shipped model" in n and "full text" in n for n in rep["notes"]), rep["notes"]
    for dim in ("stage", "symptom", "cause"):
        rows = rep["tables"][dim]
        assert all(r["method"] == "rpcc" and set(r["ci"]) == set(r["counts"]) for r in rows)
        assert abs(sum(r["share"]["total"] for r in rows) - 1) < 0.01
    assert "stage_by_year" in rep["tables"] and "period" in rep["tables"]["stage_by_year"][0]
    assert (out / "report.html").is_file()
    assert {p.name for p in (out / "figures").iterdir()} >= {"stage_over_time.png", "stage_over_time.svg",
                                                             "stage_cumulative.png", "stage_cumulative.svg"}
    md = run_mine("report", "--from", "predicted", "--db", str(db), "--format", "markdown", "--bootstrap", "50",
                  "--no-over-time")
    assert md.returncode == 0 and "rpcc" in md.stdout and "%]" in md.stdout


def test_report_from_predicted_without_a_store_is_a_user_error(tmp_path):
    proc = run_mine("report", "--from", "predicted", "--db", str(tmp_path / "missing.db"))
    assert proc.returncode == 2 and "no store there" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_method_is_a_user_error():
    proc = run_mine("report", "--method", "magic")
    assert proc.returncode == 2 and "--method" in proc.stderr
