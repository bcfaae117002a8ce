"""The emulator serving real issues (``--corpus`` / ``--relevant-corpus``), crawled by `mine crawl`.

A tiny corpus written here covers the code on any machine; the shared files
(``../shared/github-issues``) are crawled whole when present: the store must hold their titles,
bodies and comments byte for byte, and every study issue served as sampled must pass the
study's filters.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from pipeline.emulator.corpus import as_sampled, load_corpus
from pipeline.emulator.server import Emulator, EmulatorConfig, run_emulator
from pipeline.errors import UserError
from pipeline.paths import PROJECT_ROOT
from pipeline.sources import Source
from tests.helpers import run_mine, shared_issues as issues_dir


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def issue(repo: str, number: int, **kw) -> dict:
    row = {"url": f"https://github.com/{repo}/issues/{number}", "repo": repo, "number": number,
           "title": f"issue {number}", "state": "closed", "labels": [], "created_at": "2021-03-04",
           "author": "someone", "body": "the description", "comments": [], "truncated": False}
    row.update(kw)
    return row


def all_sources_file(tmp_path: Path, rows: list[dict]) -> Path:
    """A sources file taking every issue (open or closed, any label) of every repository in ``rows``."""
    repos = sorted({r["repo"] for r in rows})
    text = "sources:\n" + "".join(f"  - name: src{i}\n    repo: {repo}\n    state: all\n" for i, repo in enumerate(repos))
    p = tmp_path / "sources-all.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def crawl(url: str, db: Path, *extra: str) -> None:
    res = run_mine("crawl", "--api-url", url, "--db", str(db), *extra, env={"GITHUB_TOKEN": "t"})
    assert res.returncode == 0, res.stdout + res.stderr


def stored(db: Path) -> dict[str, dict]:
    """url -> the stored issue with its comments (author, day, time, body) in timeline order."""
    conn = sqlite3.connect(str(db))
    conn.row_factory = sqlite3.Row
    try:
        out = {r["url"]: dict(r) for r in conn.execute("SELECT * FROM issues")}
        for rec in out.values():
            rec["comments"], rec["events"] = [], []
        urls = {(r["repo"], r["number"]): r["url"] for r in out.values()}
        for repo, number, event, created, raw in conn.execute(
                "SELECT repo, number, event, created_at, raw FROM timeline_events ORDER BY repo, number, seq"):
            ev = json.loads(raw)
            rec = out[urls[(repo, number)]]
            rec["events"].append((event, created))
            if event == "commented":
                rec["comments"].append({"author": ev["user"]["login"], "at": ev["created_at"], "body": ev["body"]})
        return out
    finally:
        conn.close()


def assert_same_text(row: dict, got: dict) -> None:
    """The store holds the file's text byte for byte (missing authors as GitHub's `ghost`)."""
    url = row["url"]
    assert got["title"] == row["title"], url
    assert got["body"] == row["body"], url            # None <-> NULL
    assert json.loads(got["raw"])["user"]["login"] == (row["author"] or "ghost"), url
    if row["created_at"]:
        assert got["created_at"][:10] == row["created_at"], url
    assert [(c["author"], c["at"][:10], c["body"]) for c in got["comments"]] == \
        [(c["author"] or "ghost", c["created_at"], c["body"]) for c in row["comments"]], url
    times = [got["created_at"]] + [c["at"] for c in got["comments"]]
    assert times == sorted(times) and len(set(times)) == len(times), url   # the thread's order
    assert got["updated_at"] == max(t for _, t in got["events"]), url


# ------------------------------------------------------------------ no ../shared needed


def test_tiny_corpus_is_crawled_byte_for_byte(tmp_path):
    hostile = "<script>alert(1)</script>\n\n```\nTraceback (most recent call last):\n  ValueError: é 😀\n```"
    rows = [
        issue("pytorch/pytorch", 1001, labels=["module: onnx", "triaged"], body=hostile,
              comments=[{"author": "a", "created_at": "2021-03-04", "body": "same day, first"},
                        {"author": "b", "created_at": "2021-03-04", "body": "same day, second"},
                        {"author": "c", "created_at": "2021-05-01", "body": "  later\r\n  indented"}]),
        # the excerpt starts later in the thread: no author, no body, dated by its first comment
        issue("pytorch/pytorch", 1002, labels=["module: onnx"], author=None, body=None, created_at=None,
              comments=[{"author": "d", "created_at": "2022-01-02", "body": "a later comment"}], truncated=True),
        issue("pytorch/pytorch", 1003, labels=["triaged"]),                      # not relevant: no module: onnx
        issue("onnx/tensorflow-onnx", 50, labels=["bug"], body=""),
        issue("onnx/tensorflow-onnx", 51, labels=["question"]),                  # excluded label
        issue("onnx/tensorflow-onnx", 52, state="open"),                         # open
        # dated nowhere: takes the day of the nearest lower-numbered dated issue (#50)
        issue("onnx/tensorflow-onnx", 60, author=None, body=None, created_at=None),
        issue("someone/elsewhere", 3),                                           # a repository no source covers
    ]
    corpus = write_jsonl(tmp_path / "tiny.jsonl", rows)
    by_url = {r["url"]: r for r in rows}
    with run_emulator(EmulatorConfig(corpus=(str(corpus),), synthetic=False)) as emu:
        # GitHub's shapes for what the file lacks
        ghost = requests.get(f"{emu.url}/repos/onnx/tensorflow-onnx/issues/60", timeout=10).json()
        assert ghost["user"]["login"] == "ghost" and ghost["user"]["id"] == 10137 and ghost["body"] is None
        assert ghost["created_at"].startswith("2021-03-04")
        assert requests.get(f"{emu.url}/repos/someone/elsewhere/issues/3", timeout=10).status_code == 200
        comments = requests.get(f"{emu.url}/repos/pytorch/pytorch/issues/1001/comments", timeout=10).json()
        assert [c["body"] for c in comments] == [c["body"] for c in rows[0]["comments"]]

        # the study's sources: only what their rules keep is stored
        db = tmp_path / "study.db"
        crawl(emu.url, db)
        got = stored(db)
        assert set(got) == {rows[i]["url"] for i in (0, 1, 3, 6)}
        for url, rec in got.items():
            assert_same_text(by_url[url], rec)
            assert json.loads(rec["labels"]) == by_url[url]["labels"]
        counts = json.loads(run_mine("filter", "--db", str(db), "--format", "json").stdout)["sources"]
        assert counts["torch.onnx"]["kept"] == 2 and counts["tf2onnx"]["kept"] == 2

        # every issue, open ones and the other repository included
        db_all = tmp_path / "all.db"
        crawl(emu.url, db_all, "--sources", str(all_sources_file(tmp_path, rows)))
        got = stored(db_all)
        assert set(got) == set(by_url)
        for url, rec in got.items():
            assert_same_text(by_url[url], rec)
            assert rec["state"] == by_url[url]["state"]
        assert [e for e, _ in got[rows[5]["url"]]["events"]][-1] == "referenced"   # open: linked by a commit


def test_relevant_mode_serves_issues_as_sampled(tmp_path):
    rows = [issue("pytorch/pytorch", 7, state="open", labels=["triaged"]),
            issue("onnx/tensorflow-onnx", 8, labels=["question", "bug", "Pending On User Response"])]
    corpus = write_jsonl(tmp_path / "sampled.jsonl", rows)
    with run_emulator(EmulatorConfig(relevant_corpus=(str(corpus),), issues=10)) as emu:
        pt = requests.get(f"{emu.url}/repos/pytorch/pytorch/issues/7", timeout=10).json()
        assert pt["state"] == "closed" and [x["name"] for x in pt["labels"]] == ["triaged", "module: onnx"]
        tf = requests.get(f"{emu.url}/repos/onnx/tensorflow-onnx/issues/8", timeout=10).json()
        assert [x["name"] for x in tf["labels"]] == ["bug"]          # excluded labels dropped, any case
        db = tmp_path / "m.db"
        crawl(emu.url, db)
    got = stored(db)
    assert {r["url"] for r in rows} <= set(got)
    assert any(rec["number"] >= 90_000 for rec in got.values())         # synthetic issues beside them
    for r in rows:
        assert_same_text(r, got[r["url"]])
    counts = json.loads(run_mine("filter", "--db", str(db), "--format", "json").stdout)["sources"]
    assert counts["torch.onnx"]["kept"] >= 1 and counts["tf2onnx"]["kept"] >= 1


def test_as_sampled_applies_the_source_rule(tmp_path):
    rec = load_corpus(write_jsonl(tmp_path / "c.jsonl", [issue("a/b", 1, state="open", labels=["x", "Question"])]))[0]
    src = Source("s", "a/b", labels=("module: onnx",), exclude_labels=("question",))
    out = as_sampled(rec, src)
    assert out.state == "closed" and out.labels == ("x", "module: onnx") and src.is_relevant(
        {"state": out.state, "labels": list(out.labels)})
    assert as_sampled(rec, None).labels == rec.labels


def test_corpus_timelines_and_times_are_deterministic(tmp_path):
    rows = [issue("pytorch/pytorch", 5, labels=["module: onnx"],
                  comments=[{"author": "x", "created_at": "2021-03-04", "body": str(i)} for i in range(40)])]
    corpus = write_jsonl(tmp_path / "c.jsonl", rows)
    from pipeline.emulator.data import Dataset

    a = Dataset(seed=0, issues=5, corpus=load_corpus(corpus))
    b = Dataset(seed=9, issues=5, corpus=load_corpus(corpus))
    ev = lambda ds: [(e.kind, e.at, e.id, e.actor, e.data.get("body")) for e in ds.get("pytorch/pytorch", 5).events]
    assert ev(a) == ev(b)                                # real issues look the same whatever the seed
    rec = a.get("pytorch/pytorch", 5)
    times = [rec.created_at] + [e.at for e in rec.events if e.kind == "commented"]
    assert times == sorted(times) and len(set(times)) == 41
    assert all(time_day(t) == "2021-03-04" for t in times)   # 41 entries of one day stay in that day
    assert rec.data_available and rec.real
    # synthetic issues are untouched by a corpus
    plain = Dataset(seed=0, issues=5)
    assert [(r.number, r.title, len(r.events)) for r in plain.issues["pytorch/pytorch"].values()] == \
        [(r.number, r.title, len(r.events)) for r in a.issues["pytorch/pytorch"].values() if not r.real]


def time_day(ts: int) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(ts))


@pytest.mark.parametrize("line, fault", [
    ('{"url": 1', "not valid JSON"),
    ("[]", "must be a JSON object"),
    (json.dumps({k: v for k, v in issue("a/b", 1).items() if k != "title"}), "lacks field(s) title"),
    (json.dumps(issue("a/b", 1, extra=1)), "unknown field(s) extra"),
    (json.dumps({**issue("a/b", 1), "number": "1"}), "field 'number' must be a positive integer"),
    (json.dumps(issue("a/b", 1, url="https://github.com/a/b/issues/2")), "field 'url' must be https://github.com/a/b/issues/1"),
    (json.dumps(issue("a b", 1)), "field 'repo' must be owner/name"),
    (json.dumps(issue("a/b", 1, state="merged")), "field 'state' must be open or closed"),
    (json.dumps(issue("a/b", 1, labels="bug")), "field 'labels' must be a list of label names"),
    (json.dumps(issue("a/b", 1, created_at="2021-13-01")), "field 'created_at' must be a day YYYY-MM-DD or null"),
    (json.dumps(issue("a/b", 1, created_at="2021-03-04T10:00:00Z")), "field 'created_at' must be a day"),
    (json.dumps(issue("a/b", 1, author="two words")), "field 'author' must be a GitHub login or null"),
    (json.dumps(issue("a/b", 1, body=3)), "field 'body' must be a string or null"),
    (json.dumps(issue("a/b", 1, comments={})), "field 'comments' must be a list"),
    (json.dumps(issue("a/b", 1, comments=[{"author": "x", "created_at": "2021-03-04"}])), "field 'comments[0]' lacks field(s) body"),
    (json.dumps(issue("a/b", 1, comments=[{"author": "x", "created_at": None, "body": ""}])), "field 'comments[0].created_at' must be a day"),
    (json.dumps(issue("a/b", 1, comments=[{"author": "x", "created_at": "2020-01-01", "body": ""}])),
     "field 'comments[0].created_at' 2020-01-01 is before the previous entry's day 2021-03-04"),
    (json.dumps(issue("a/b", 1, truncated="no")), "field 'truncated' must be true or false"),
])
def test_bad_corpus_lines_name_file_line_and_field(tmp_path, line, fault):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(issue("a/b", 9)) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(UserError) as e:
        load_corpus(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:3: ") and fault in msg and "\n" not in msg, msg


def test_bad_corpus_files(tmp_path):
    dup = write_jsonl(tmp_path / "dup.jsonl", [issue("a/b", 1), issue("A/B", 1)])
    with pytest.raises(UserError, match=r"dup.jsonl:2: issue https://github.com/A/B/issues/1 is already on line 1"):
        load_corpus(dup)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(UserError, match="no issues in the corpus file"):
        load_corpus(empty)
    with pytest.raises(UserError, match="corpus file not found"):
        load_corpus(tmp_path / "missing.jsonl")
    # the same issue in two files, and a number a synthetic issue already has
    other = write_jsonl(tmp_path / "other.jsonl", [issue("a/b", 1)])
    one = write_jsonl(tmp_path / "one.jsonl", [issue("a/b", 1)])
    with pytest.raises(UserError, match=r"other.jsonl:1: issue https://github.com/a/b/issues/1 is already given at .*one.jsonl:1"):
        Emulator(EmulatorConfig(corpus=(str(one),), relevant_corpus=(str(other),)))
    from pipeline.emulator.data import Dataset

    first = min(Dataset(seed=0, issues=10).issues["onnx/tensorflow-onnx"])
    clash = write_jsonl(tmp_path / "clash.jsonl", [issue("onnx/tensorflow-onnx", first)])
    with pytest.raises(UserError, match="has the number of a synthetic issue"):
        Emulator(EmulatorConfig(issues=10, corpus=(str(clash),)))


def test_cli_emulate_bad_corpus_is_one_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(issue("a/b", 1, state="merged")) + "\n", encoding="utf-8")
    r = subprocess.run([sys.executable, "-m", "pipeline", "emulate", "--corpus", str(bad)], cwd=PROJECT_ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and f"{bad}:1: field 'state'" in r.stderr


def test_cli_emulate_serves_a_corpus_alone(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [issue("pytorch/pytorch", 12, labels=["module: onnx"])])
    proc = subprocess.Popen([sys.executable, "-m", "pipeline", "emulate", "--port", "0", "--relevant-corpus",
                             str(corpus), "--no-synthetic"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None else "")
        assert "1 real issues" in proc.stdout.readline()
        listed = requests.get(f"{m.group(0)}/repos/pytorch/pytorch/issues", params={"state": "all"}, timeout=10).json()
        assert [i["number"] for i in listed] == [12]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# ------------------------------------------------------------------ the shared files


def test_shared_files_are_crawled_byte_for_byte(tmp_path):
    d = issues_dir()
    files = [d / "study-issues.jsonl", d / "converter-issues.jsonl"]
    rows = [r for f in files for r in read_jsonl(f)]
    with run_emulator(EmulatorConfig(corpus=tuple(map(str, files)), synthetic=False)) as emu:
        db = tmp_path / "all.db"
        crawl(emu.url, db, "--sources", str(all_sources_file(tmp_path, rows)), "--concurrency", "8")
    got = stored(db)
    assert set(got) == {r["url"] for r in rows}
    for r in rows:
        assert_same_text(r, got[r["url"]])
        assert got[r["url"]]["state"] == r["state"] and json.loads(got[r["url"]]["labels"]) == r["labels"]


def test_study_issues_served_as_sampled_are_all_kept(tmp_path):
    study = issues_dir() / "study-issues.jsonl"
    rows = read_jsonl(study)
    assert len(rows) == 150
    with run_emulator(EmulatorConfig(relevant_corpus=(str(study),), issues=40)) as emu:
        db = tmp_path / "study.db"
        crawl(emu.url, db)
    got = stored(db)
    assert {r["url"] for r in rows} <= set(got), "every study issue is listed by the default sources"
    for r in rows:
        assert_same_text(r, got[r["url"]])
    from pipeline.sample.filter import filtered_issues
    from pipeline.store import connect

    conn = connect(db)
    kept = {r["url"] for r in filtered_issues(conn)}
    conn.close()
    assert {r["url"] for r in rows} <= kept, "every study issue passes the data-availability filter"
    counts = json.loads(run_mine("filter", "--db", str(db), "--format", "json").stdout)["sources"]
    real = {"torch.onnx": sum(r["repo"] == "pytorch/pytorch" for r in rows),
            "tf2onnx": sum(r["repo"] == "onnx/tensorflow-onnx" for r in rows)}
    for name, n in real.items():
        assert counts[name]["kept"] >= n
