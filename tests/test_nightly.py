"""`mine nightly` against the real emulator: report + change summary, cheap repeat runs, touched issues found."""

from __future__ import annotations

import json

import pytest

from pipeline.nightly import run_nightly
from pipeline.sources import issue_url
from tests.helpers import run_mine


@pytest.mark.slow
@pytest.mark.parametrize("emulator", [{"issues": 60}], indirect=True)
def test_nightly_twice_then_touched(emulator, tmp_path):
    db, out = tmp_path / "mine.db", tmp_path / "nightly"
    # first night through the CLI, as cron runs it
    proc = run_mine("nightly", "--api-url", emulator.url, "--db", str(db), "--out", str(out), "--bootstrap", "100")
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    assert f"report: {out / 'report.html'}" in proc.stdout
    for name in ("report.html", "report.json", "report.md", "changes.md", "changes.json", "history.json"):
        assert (out / name).is_file(), name
    first = json.loads((out / "changes.json").read_text())
    assert len(first["new"]) > 0 and first["previous_run"] is None
    report = json.loads((out / "report.json").read_text())
    assert {"n", "converters", "tables"} <= set(report)
    assert all("ci" in r and "method" in r for r in report["tables"]["stage"])

    # second night: nothing changed upstream -> nothing new, almost no requests
    emulator.reset_stats()
    second = run_nightly(db, out, api_url=emulator.url, bootstrap=100, log=lambda m: None)
    assert second.exit_code == 0
    assert second.new == [] and second.updated == []
    assert emulator.stats()["requests"] <= 4 and second.requests <= 4
    assert second.previous_run == first["run_at"]

    # touch three issues upstream: the third night reports exactly those
    touched = emulator.touch("pytorch/pytorch", 3)
    third = run_nightly(db, out, api_url=emulator.url, bootstrap=100, log=lambda m: None)
    assert third.exit_code == 0 and third.new == []
    assert {d["url"] for d in third.updated} == {issue_url("pytorch/pytorch", n) for n in touched}
    if third.source == "both":  # the classifier could train (study titles available)
        kept = [d for d in third.updated if d["kept"]]
        assert all(d["stage"] and d["symptom"] for d in kept)
    history = json.loads((out / "history.json").read_text())
    assert [h["updated"] for h in history] == [0, 0, 3]
    assert "3 updated" in (out / "changes.md").read_text()


@pytest.mark.parametrize("emulator", [{"issues": 30, "rate_limit": 5, "reset_seconds": 3600}], indirect=True)
def test_nightly_rate_limited_is_partial(emulator, tmp_path):
    res = run_nightly(tmp_path / "m.db", tmp_path / "out", api_url=emulator.url, max_wait=1, bootstrap=50,
                      log=lambda m: None)
    assert res.exit_code == 3 and res.partial
    assert (tmp_path / "out" / "report.html").is_file()
