"""Six converters on one table: the packaged sources, the emulator's six repositories, the
per-source cross-reference rule, and reports with six converter columns (the study's two
columns unchanged, 80-column terminals readable, `--converter` selecting)."""

from __future__ import annotations

import csv
import json
import re
from contextlib import closing
from collections import Counter
from pathlib import Path

import pytest
import requests

from pipeline.emulator.data import REPO_LABELS, Dataset, study_relevant
from pipeline.emulator.server import EmulatorConfig, run_emulator
from pipeline.sample.filter import filtered_issues
from pipeline.sources import load_sources
from pipeline.store import connect
from pipeline.store.db import copy_embeddings
from tests.helpers import run_mine, shared_issues as issues_dir
from tests.test_emulator_corpus import read_jsonl
from tests.test_report import TABLE_8, TABLE_9

SIX = ["onnx-tf", "onnx2torch", "paddle2onnx", "sklearn-onnx", "tf2onnx", "torch.onnx"]


def test_packaged_sources_are_the_six_converters_with_the_study_rules_unchanged():
    by_name = {s.name: s for s in load_sources()}
    assert sorted(by_name) == SIX
    pt, tf = by_name["torch.onnx"], by_name["tf2onnx"]
    assert (pt.repo, pt.state, pt.labels, pt.exclude_labels) == ("pytorch/pytorch", "closed", ("module: onnx",), ())
    assert (tf.repo, tf.state, tf.labels, tf.exclude_labels) == (
        "onnx/tensorflow-onnx", "closed", (), ("pending on user response", "question"))
    assert pt.xref_repos == tf.xref_repos == ("pytorch/pytorch", "onnx/tensorflow-onnx")
    assert {s.repo for s in by_name.values()} == {"pytorch/pytorch", "onnx/tensorflow-onnx", "PaddlePaddle/Paddle2ONNX",
                                                  "onnx/sklearn-onnx", "ENOT-AutoDL/onnx2torch", "onnx/onnx-tensorflow"}
    assert all(s.state == "closed" for s in by_name.values())


def test_rules_name_only_labels_the_real_repositories_use():
    """Every label a source names, and every synthetic label, is one the repository really has."""
    rows = read_jsonl(issues_dir() / "converter-issues.jsonl") + read_jsonl(issues_dir() / "study-issues.jsonl")
    seen: dict[str, set[str]] = {}
    for r in rows:
        seen.setdefault(r["repo"], set()).update(r["labels"])
    for s in load_sources():
        named = set(s.labels) | set(s.exclude_labels)
        assert named <= seen[s.repo], (s.name, named - seen[s.repo])
        if s.repo not in ("pytorch/pytorch", "onnx/tensorflow-onnx"):   # the study's vocabularies are wider
            assert set(REPO_LABELS[s.repo]) <= seen[s.repo], (s.repo, set(REPO_LABELS[s.repo]) - seen[s.repo])


def test_emulator_serves_the_six_repositories_with_their_label_names(emulator):
    ds = emulator.dataset
    for s in load_sources():
        assert requests.get(f"{emulator.url}/repos/{s.repo}", timeout=10).status_code == 200
        for lab in (*s.labels, *s.exclude_labels):   # a label check before crawling finds them
            assert requests.get(f"{emulator.url}/repos/{s.repo}/labels/{lab}", timeout=10).status_code == 200, lab
        used = Counter(lab for r in ds.issues[s.repo].values() for lab in r.labels)
        assert set(used) <= set(REPO_LABELS[s.repo])
        relevant = [r for r in ds.issues[s.repo].values() if study_relevant(r)]
        assert relevant and any(r.data_available for r in relevant) and not all(r.data_available for r in relevant)
    assert not any(r.labels for r in ds.issues["onnx/onnx-tensorflow"].values())   # it labels no issue
    assert {"Operator(New)", "stale"} <= {lab for r in ds.issues["PaddlePaddle/Paddle2ONNX"].values() for lab in r.labels}
    titles = " ".join(r.title for r in ds.issues["ENOT-AutoDL/onnx2torch"].values())
    assert "Converter is not implemented (OperationDescription(" in titles


def test_synthetic_data_of_the_study_repositories_does_not_depend_on_the_other_four():
    six = Dataset(seed=4, issues=80)
    two = Dataset(seed=4, issues=80, repos=("pytorch/pytorch", "onnx/tensorflow-onnx"))
    for repo in ("pytorch/pytorch", "onnx/tensorflow-onnx"):
        snap = lambda ds: [(r.number, r.title, r.labels, r.updated_at, r.linkage,
                            [(e.kind, e.at, e.id, e.actor) for e in r.events]) for r in ds.issues[repo].values()]
        assert snap(six) == snap(two)
    a, b = Dataset(seed=4, issues=80), Dataset(seed=4, issues=80)
    assert [(r.number, r.title, len(r.events)) for r in a.issues["onnx/sklearn-onnx"].values()] == \
        [(r.number, r.title, len(r.events)) for r in b.issues["onnx/sklearn-onnx"].values()]
    sized = Dataset(seed=4, issues=10, sizes={"pytorch/pytorch": 40})
    assert sum(not r.is_pr for r in sized.issues["pytorch/pytorch"].values()) == 40
    assert sum(not r.is_pr for r in sized.issues["onnx/sklearn-onnx"].values()) == 10


@pytest.mark.parametrize("emulator", [{"issues": 150}], indirect=True)
def test_filter_uses_each_sources_cross_reference_repositories(emulator, tmp_path):
    db = tmp_path / "m.db"
    res = run_mine("crawl", "--api-url", emulator.url, "--db", str(db))
    assert res.returncode == 0, res.stderr
    ds = emulator.dataset
    conn = connect(db)
    kept = {(r["repo"], r["number"]) for r in filtered_issues(conn)}
    stored = conn.execute("SELECT repo, number, source FROM issues").fetchall()
    conn.close()
    assert {r[2] for r in stored} == set(SIX)
    for repo, number, _ in stored:   # the filter agrees with the emulator's ground truth everywhere
        assert ((repo, number) in kept) == ds.get(repo, number).data_available, (repo, number)
    # a cross-reference from the converter's framework counts for it (and nowhere else)
    paddle = [r for r in ds.issues["PaddlePaddle/Paddle2ONNX"].values() if r.linkage == "xref_closed_study"]
    sources = {e.data["source"][0] for r in paddle for e in r.events if e.kind == "cross-referenced"}
    assert sources and sources <= {"PaddlePaddle/Paddle", "onnx/onnx"}
    assert any(("PaddlePaddle/Paddle2ONNX", r.number) in kept for r in paddle if study_relevant(r))
    pt_foreign = [r for r in ds.issues["pytorch/pytorch"].values() if r.linkage == "xref_closed_foreign"]
    assert {e.data["source"][0] for r in pt_foreign for e in r.events if e.kind == "cross-referenced"} & {"onnx/onnx"}


# ------------------------------------------------------------------ reports with six columns


def _extra_labels(db: Path, out: Path) -> Path:
    """Labels for the kept issues of the four newer converters (a rotation over categories: the
    point is the columns, not the numbers)."""
    conn = connect(db)
    rows = [r for r in filtered_issues(conn) if r["source"] not in ("torch.onnx", "tf2onnx")]
    conn.close()
    stages, symptoms, causes = (["node_conversion", "optimization", "load_model"], ["crash", "wrong_model"],
                                ["incompatibility", "type_problem", "shape_problem", "api_misuse"])
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["url", "converter", "stage", "symptom", "cause"])
        for i, r in enumerate(rows):
            w.writerow([r["url"], r["source"], stages[i % 3], symptoms[i % 2], causes[i % 4]])
    return out


def _rows(rep: dict, table: str) -> dict:
    return {r["category"]: r for r in rep["tables"][table]}


def _lines_fit(text: str, width: int = 80) -> None:
    too_long = [ln for ln in text.splitlines() if len(ln) > width]
    assert not too_long, too_long[:3]
    assert "…" not in text


@pytest.mark.slow
def test_six_converter_columns_with_the_study_columns_unchanged(tmp_path):
    study = issues_dir() / "study-issues.jsonl"
    six_db, two_db = tmp_path / "six.db", tmp_path / "two.db"
    with run_emulator(EmulatorConfig(issues=60, relevant_corpus=(str(study),))) as emu:
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(six_db)).returncode == 0
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(two_db), "--source", "torch.onnx",
                        "--source", "tf2onnx").returncode == 0

    # gold: the study's labels plus labels of the other four -> six columns, Tables 8 and 9 intact
    extra = _extra_labels(six_db, tmp_path / "extra.csv")
    gold = run_mine("report", "labels/study.csv", str(extra), "--format", "json")
    assert gold.returncode == 0, gold.stderr
    rep = json.loads(gold.stdout)
    assert rep["converters"] == SIX
    for table, expected in (("stage", TABLE_8), ("symptom", TABLE_9)):
        rows = _rows(rep, table)
        for cat, (tf, pt, _, _) in expected.items():
            assert (rows[cat]["counts"]["tf2onnx"], rows[cat]["counts"]["torch.onnx"]) == (tf, pt), (table, cat)
    text = run_mine("report", "labels/study.csv", str(extra), env={"COLUMNS": "80"})
    assert text.returncode == 0
    _lines_fit(text.stdout)
    assert all(name in text.stdout for name in SIX) and "(1/2)" in text.stdout
    latex = run_mine("report", "labels/study.csv", str(extra), "--format", "latex").stdout
    assert r"\begin{table*}" in latex and r"\shortstack[r]{70 (70\%)\\{[60\%, 78\%]}}" in latex

    # both: six columns; the study's two equal those of a store holding only the study's sources
    args = ("--from", "both", "--format", "json", "--bootstrap", "60", "--no-over-time")
    six = run_mine("report", "--db", str(six_db), *args)
    assert six.returncode == 0, six.stderr[-3000:]
    with closing(connect(two_db)) as conn:  # the study's issues are embedded already: reuse the cache
        assert copy_embeddings(conn, six_db) > 0
    two = run_mine("report", "--db", str(two_db), *args)
    assert two.returncode == 0, two.stderr[-3000:]
    six, two = json.loads(six.stdout), json.loads(two.stdout)
    assert six["converters"] == SIX and two["converters"] == ["tf2onnx", "torch.onnx"]
    for dim in ("stage", "symptom", "cause"):
        a, b = _rows(six, dim), _rows(two, dim)
        assert list(a) == list(b)
        for cat in a:
            for conv in ("tf2onnx", "torch.onnx"):
                assert a[cat]["counts"][conv] == b[cat]["counts"][conv], (dim, cat, conv)
                assert a[cat]["share"][conv] == b[cat]["share"][conv], (dim, cat, conv)
    # selecting the study's two converters gives the two-source report exactly (intervals included)
    chosen = run_mine("report", "--db", str(six_db), *args, "--converter", "tf2onnx", "--converter", "torch.onnx")
    assert chosen.returncode == 0, chosen.stderr[-3000:]
    chosen = json.loads(chosen.stdout)
    assert chosen["converters"] == two["converters"] and chosen["n"] == two["n"]
    for dim in ("stage", "symptom", "cause"):
        assert chosen["tables"][dim] == two["tables"][dim]

    # the terminal at 80 columns, and every output format, with six converters
    term = run_mine("report", "--db", str(six_db), "--from", "both", "--bootstrap", "60", env={"COLUMNS": "80"})
    assert term.returncode == 0, term.stderr[-3000:]
    _lines_fit(term.stdout)
    assert all(name in term.stdout for name in SIX)
    out = tmp_path / "out"
    files = run_mine("report", "--db", str(six_db), "--from", "both", "--bootstrap", "60", "--out", str(out),
                     "--format", "markdown")
    assert files.returncode == 0, files.stderr[-3000:]
    header = next(ln for ln in files.stdout.splitlines() if ln.startswith("| Stage |"))
    assert header.split(" | ")[1:7] == SIX
    assert {"stage_by_converter.png", "stage_by_converter.svg"} <= {p.name for p in (out / "figures").iterdir()}
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<table class="wide">' in html and all(f"<th>{name}</th>" in html for name in SIX)


def test_converter_selection_errors_list_the_valid_names(tmp_path):
    res = run_mine("report", "--converter", "paddle2onnx", "--converter", "torch.onnx")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert re.search(r"--converter paddle2onnx: no issues of it in the label files; valid: tf2onnx, torch\.onnx",
                     res.stderr), res.stderr
    ok = run_mine("report", "--converter", "torch.onnx", "--format", "json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["converters"] == ["torch.onnx"]
    assert json.loads(ok.stdout)["n"] == 100
    with run_emulator(EmulatorConfig(issues=20)) as emu:
        db = tmp_path / "m.db"
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--source", "onnx-tf").returncode == 0
    res = run_mine("report", "--from", "predicted", "--db", str(db), "--converter", "onnx2torch")
    assert res.returncode == 2 and "--converter onnx2torch: no issues of it in the store's filtered issues; valid: onnx-tf" in res.stderr


def test_crawl_benchmark_over_six_sources_costs_one_request_per_source_when_nothing_changed():
    """`benchmarks/crawl.py --sources all` at a small size (its timings are printed, never asserted)."""
    import subprocess
    import sys

    from pipeline.paths import PROJECT_ROOT

    res = subprocess.run([sys.executable, "benchmarks/crawl.py", "--sources", "all", "--issues", "30",
                          "--latency-ms", "0", "--json"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    figures = json.loads(res.stdout[res.stdout.index("\n{") + 1:])
    assert sorted(figures["stored_issues"]) == SIX and all(n > 0 for n in figures["stored_issues"].values())
    assert figures["no_change"]["requests"] == figures["no_change_again"]["requests"] == 6
    assert figures["no_change_again"]["not_modified"] == 6
    first = figures["first"]
    assert first["floor"] <= first["requests"] <= 1.05 * first["floor"]
