"""Nothing is deleted on an empty or implausible listing: labels are checked before a crawl,
--full refuses to remove more than 20% of a source unless --allow-removals; the emulator's
label endpoints have GitHub's shapes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
import requests

from pipeline.paths import shared_dir
from tests.helpers import run_mine as _run_mine
from tests.test_crawl import SOURCES, emulator

TORCH, TF = SOURCES[0], SOURCES[1]


def run_mine(*args: str, env: dict | None = None):
    return _run_mine(*args, env={"GITHUB_TOKEN": "t0k3n", **(env or {})})


def sources_file(path: Path, torch_labels=("module: onnx",), tf_exclude=("pending on user response", "question"),
                 torch_repo="pytorch/pytorch") -> Path:
    def names(xs):
        return "[" + ", ".join(json.dumps(x) for x in xs) + "]"

    path.write_text(f"""sources:
  - name: torch.onnx
    repo: {torch_repo}
    state: closed
    labels: {names(torch_labels)}
  - name: tf2onnx
    repo: onnx/tensorflow-onnx
    state: closed
    exclude_labels: {names(tf_exclude)}
""", encoding="utf-8")
    return path


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as c:
        return dict(c.execute("SELECT source, COUNT(*) FROM issues GROUP BY source").fetchall())


def error_line(r) -> str:
    """The one error line of a refused run (progress bars, drawn on stderr once the crawl ran, aside)."""
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "━" not in ln]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    return lines[0]


# -- the emulator's label endpoints -----------------------------------------------------------

def test_label_endpoints_have_githubs_shapes(tmp_path):
    with emulator() as emu:
        base = emu.url
        one = requests.get(f"{base}/repos/{TORCH.repo}/labels/module%3A%20onnx", timeout=10)
        upper = requests.get(f"{base}/repos/{TORCH.repo}/labels/MODULE%3A%20ONNX", timeout=10)
        missing = requests.get(f"{base}/repos/{TORCH.repo}/labels/modul%3A%20onnx", timeout=10)
        first = requests.get(f"{base}/repos/{TF.repo}/labels", params={"per_page": 3}, timeout=10)
        every, url = [], f"{base}/repos/{TF.repo}/labels"
        while url:
            page = requests.get(url, params={"per_page": 3} if not every else None, timeout=10)
            every += page.json()
            url = page.links.get("next", {}).get("url")
        no_repo = requests.get(f"{base}/repos/no/such/labels", timeout=10)
    assert one.status_code == upper.status_code == 200 and one.json() == upper.json()   # case-insensitive
    assert one.json()["name"] == "module: onnx"
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"
    assert no_repo.status_code == 404
    assert len(first.json()) == 3 and 'rel="next"' in first.headers["Link"] and 'rel="last"' in first.headers["Link"]
    assert {lab["name"] for lab in every} >= {"question", "pending on user response", "bug"}
    assert len({lab["id"] for lab in every}) == len(every)
    # the keys of GitHub's label objects, as recorded (id, node_id, url, name, color, default, description)
    replay = shared_dir() / "github-replay" / "Issue.setUp.txt"
    if not replay.is_file():
        pytest.skip(f"recorded GitHub responses not found at {replay.parent} (../shared is only on project machines and CI)")
    from pipeline.emulator.replay import parse_replay

    recorded = [lab for ex in parse_replay(replay) if ex.status == 200 and isinstance(ex.json(), dict)
                for lab in ex.json().get("labels", [])]
    assert recorded
    keys = {frozenset(lab) for lab in recorded}
    assert {frozenset(one.json())} == keys and {frozenset(lab) for lab in every} == keys


# -- labels checked before a crawl ------------------------------------------------------------

@pytest.mark.parametrize("full", [False, True])
def test_a_misspelled_label_stops_the_crawl_naming_the_label_and_removes_nothing(tmp_path, full):
    db = tmp_path / "m.db"
    with emulator() as emu:
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(db)).returncode == 0
        stored, before = counts(db), sha(db)
        emu.reset_stats()
        typo = sources_file(tmp_path / "typo.yaml", torch_labels=("modul: onnx",))
        r = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--sources", str(typo),
                     *(["--full"] if full else []))
        listed = emu.stats()["by_endpoint"].get("/repos/{owner}/{repo}/issues", 0)
    line = error_line(r)
    assert "'modul: onnx'" in line and "does not exist in pytorch/pytorch" in line and "closest: 'module: onnx'" in line
    assert listed == 0                                      # nothing was listed, so nothing could go
    assert counts(db) == stored and sha(db) == before


def test_label_mistakes_are_named(tmp_path):
    db = tmp_path / "m.db"
    with emulator() as emu:
        cases = [
            (dict(tf_exclude=("pending on user responce", "question")),
             "excluded label 'pending on user responce' does not exist in onnx/tensorflow-onnx "
             "(closest: 'pending on user response')"),
            (dict(torch_labels=("Module: ONNX",)), "label 'Module: ONNX' is spelled 'module: onnx' in pytorch/pytorch"),
            (dict(torch_labels=("zzz-qqq",)), "label 'zzz-qqq' does not exist in pytorch/pytorch (it has "),
            (dict(torch_repo="pytorch/no-such-repo"), "repository pytorch/no-such-repo not found"),
        ]
        for i, (kw, words) in enumerate(cases):
            r = run_mine("crawl", "--api-url", emu.url, "--db", str(db),
                         "--sources", str(sources_file(tmp_path / f"s{i}.yaml", **kw)))
            assert words in error_line(r), (words, r.stderr)


def test_a_label_checked_once_is_not_asked_again_until_the_listing_comes_back_empty(tmp_path):
    """A known label costs nothing on the next run; when the listing is suddenly empty (the
    label was deleted or renamed on GitHub) it is checked again and the run stops naming it."""
    db = tmp_path / "m.db"
    with emulator() as emu:
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(db)).returncode == 0
        emu.touch(TORCH.repo, 2)
        emu.reset_stats()
        again = json.loads(run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--format", "json").stdout)
        assert emu.stats()["by_endpoint"].get("/repos/{owner}/{repo}/labels/{name}", 0) == 0
        assert again["sources"][TORCH.name]["updated"] == 2
        repo = emu.dataset.repos[TORCH.repo]
        repo.label_colors = dict(repo.label_colors)          # the dataset shares the module's dict
        repo.label_colors["module: onnx-exporter"] = repo.label_colors.pop("module: onnx")   # renamed
        for rec in emu.dataset.issues[TORCH.repo].values():
            rec.labels = ["module: onnx-exporter" if x == "module: onnx" else x for x in rec.labels]
        stored = counts(db)
        r = run_mine("crawl", "--api-url", emu.url, "--db", str(db))
    line = error_line(r)
    assert "label 'module: onnx' does not exist in pytorch/pytorch (closest: " in line, line
    assert "'module: onnx-exporter'" in line
    assert counts(db) == stored


# -- --full removal guard ---------------------------------------------------------------------

def test_full_refuses_to_remove_more_than_a_fifth_of_a_source_unless_allowed(tmp_path):
    db = tmp_path / "m.db"
    with emulator() as emu:
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(db)).returncode == 0
        stored = counts(db)
        ds = emu.dataset
        numbers = sorted(n for n, rec in ds.issues[TORCH.repo].items() if "module: onnx" in rec.labels)
        gone = numbers[: len(numbers) // 2]          # the label left half of the issues: implausible
        for n in gone:
            ds.get(TORCH.repo, n).labels.remove("module: onnx")
        refused = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--full")
        refused_json = json.loads(run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--full",
                                           "--format", "json").stdout)
        assert counts(db) == stored
        allowed = run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--full", "--allow-removals",
                           "--format", "json")
        assert run_mine("crawl", "--api-url", emu.url, "--db", str(db), "--allow-removals").returncode == 2
    assert refused.returncode == 2, refused.stderr
    errors = [ln for ln in refused.stderr.splitlines() if ln.startswith("error: ")]
    removed_from_store = {n for n in gone if n in set(refused_json["sources"][TORCH.name]["would_remove"])}
    assert len(errors) == 1 and "torch.onnx: --full would remove" in errors[0] and "--allow-removals" in errors[0]
    assert "more than 20%" in errors[0]
    listed = [ln.split()[-1] for ln in refused.stderr.splitlines() if ln.strip().startswith("would remove")]
    assert len(listed) == 10 and all(u.startswith("https://github.com/pytorch/pytorch/issues/") for u in listed)
    assert "more of torch.onnx" in refused.stderr
    assert "removals refused" in refused.stdout and "0 removed" in refused.stdout
    would = refused_json["sources"][TORCH.name]["would_remove"]
    assert set(would) == removed_from_store and len(would) > 0.2 * stored[TORCH.name]
    assert refused_json["sources"][TORCH.name]["removed"] == 0 and refused_json["refused"]
    assert allowed.returncode == 0, allowed.stderr
    out = json.loads(allowed.stdout)
    assert out["sources"][TORCH.name]["removed"] == len(would) and not out["refused"]
    assert counts(db)[TORCH.name] == stored[TORCH.name] - len(would)
    assert counts(db)[TF.name] == stored[TF.name]
