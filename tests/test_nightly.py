"""`mine nightly` against the real emulator: report + change summary, cheap repeat runs, touched issues found."""

from __future__ import annotations

import json

import pytest

from pipeline.crawl.client import GitHubClient
from pipeline.crawl.crawler import crawl
from pipeline.nightly import run_nightly, share_shifts
from pipeline.paths import PROJECT_ROOT
from pipeline.sources import issue_url, load_sources
from pipeline.store.db import connect
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
    budget = 2 * len(load_sources())  # a listing request per source, and a second page at most
    assert emulator.stats()["requests"] <= budget and second.requests <= budget
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
                      label_files=_few_labels(tmp_path), log=lambda m: None)
    assert res.exit_code == 3 and res.partial
    assert (tmp_path / "out" / "report.html").is_file()


def _few_labels(tmp_path):
    """A label file too small to train on: the nightly run takes its quick gold-only path."""
    p = tmp_path / "few.csv"
    lines = (PROJECT_ROOT / "labels" / "study.csv").read_text(encoding="utf-8").splitlines()
    p.write_text("\n".join(lines[:4]) + "\n", encoding="utf-8")
    return [p]


@pytest.mark.parametrize("emulator", [{"issues": 30}], indirect=True)
def test_issues_crawled_between_nightly_runs_are_still_reported(emulator, tmp_path):
    """A manual `mine crawl` between two nights must not hide its changes from the next summary."""
    db, out, labels = tmp_path / "mine.db", tmp_path / "nightly", _few_labels(tmp_path)
    first = run_nightly(db, out, api_url=emulator.url, label_files=labels, bootstrap=0, log=lambda m: None)
    assert first.exit_code == 0 and first.new
    touched = emulator.touch("pytorch/pytorch", 3)
    conn = connect(db)
    crawl(conn, load_sources(), GitHubClient(emulator.url))  # someone crawls by hand in between
    conn.close()
    second = run_nightly(db, out, api_url=emulator.url, label_files=labels, bootstrap=0, log=lambda m: None)
    assert second.new == []
    assert {d["url"] for d in second.updated} == {issue_url("pytorch/pytorch", n) for n in touched}
    third = run_nightly(db, out, api_url=emulator.url, label_files=labels, bootstrap=0, log=lambda m: None)
    assert third.new == [] and third.updated == []  # reported once, not again


def test_share_shifts_lists_categories_that_disappeared():
    prev = {"stage": {"node_conversion": 0.7, "export": 0.1, "other": 0.2}}
    cur = {"stage": {"node_conversion": 0.7, "other": 0.3}}
    shifts = {(s["category"], s["delta_pp"]) for s in share_shifts(prev, cur)}
    assert shifts == {("export", -10.0), ("other", 10.0)}


@pytest.mark.parametrize("emulator", [{"issues": 5}], indirect=True)
def test_nightly_bad_input_is_one_line_exit_2_before_any_request(emulator, tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        (["--api-url", "api.github.com"], "not an http(s) URL"),
        (["--api-url", emulator.url, "--out", str(a_file)], "must be a folder"),
        (["--api-url", emulator.url, "--labels", str(tmp_path / "missing.csv")], "missing.csv"),
    ]
    for args, message in cases:
        proc = run_mine("nightly", "--db", str(tmp_path / "m.db"), "--out", str(tmp_path / "out"), *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        err = proc.stdout + proc.stderr
        assert message in err and "Traceback" not in err
    assert emulator.stats()["requests"] == 0
