"""Label storage: safe rater names, validation, durable and concurrent appends, latest wins."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading

import pytest

from pipeline.codebook import load_codebook
from pipeline.errors import UserError
from pipeline.labelling.storage import (
    RECORD_FIELDS, LabelError, LabelStore, append_records, latest_records, read_records,
    validate_label, validate_rater,
)
from pipeline.label_files.files import read_labels

URL = "https://github.com/pytorch/pytorch/issues/{}"
GOOD = {"stage": "node_conversion", "symptom": "crash", "cause": "incompatibility", "cause_subtype": "external"}


@pytest.mark.parametrize("name", ["alice", "Bob_2", "r.one", "x-y", "a" * 64])
def test_rater_names_accepted(name):
    assert validate_rater(name) == name


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "a..b", "x.", "a b", "a" * 65, "é", "a\\b", "-x"])
def test_rater_names_rejected(name):
    with pytest.raises(UserError, match="rater"):
        validate_rater(name)


def test_validate_label_requires_all_dimensions_and_subtype_only_where_defined():
    cb = load_codebook()
    assert validate_label(GOOD, cb) == GOOD
    with pytest.raises(LabelError, match="symptom is missing"):
        validate_label({"stage": "export", "cause": "typo"}, cb)
    with pytest.raises(LabelError, match="cause_subtype is missing"):
        validate_label({**GOOD, "cause_subtype": ""}, cb)
    with pytest.raises(LabelError, match="not a subtype"):
        validate_label({**GOOD, "cause_subtype": "tensor"}, cb)
    with pytest.raises(LabelError, match="has no subtypes"):
        validate_label({**GOOD, "cause": "typo"}, cb)
    with pytest.raises(LabelError, match="not a category"):
        validate_label({**GOOD, "stage": "nonsense"}, cb)
    assert validate_label({**GOOD, "cause": "typo", "cause_subtype": ""}, cb)["cause_subtype"] == ""


def test_save_writes_documented_record_and_latest_wins(tmp_path):
    store = LabelStore(tmp_path, "alice", load_codebook())
    store.save(URL.format(1), GOOD, note="first")
    store.save(URL.format(2), {**GOOD, "cause": "typo", "cause_subtype": ""})
    store.save(URL.format(1), {**GOOD, "stage": "export"}, note="changed my mind")
    lines = (tmp_path / "alice.jsonl").read_text().splitlines()
    assert len(lines) == 3
    rec = json.loads(lines[0])
    assert tuple(rec) == RECORD_FIELDS
    assert rec["rater"] == "alice" and rec["codebook_version"] == load_codebook().version
    latest = store.latest()
    assert latest[URL.format(1)]["stage"] == "export" and latest[URL.format(1)]["note"] == "changed my mind"
    # the lead's reader agrees: one row per url, latest wins
    df = read_labels(tmp_path / "alice.jsonl").set_index("url")
    assert df.loc[URL.format(1), "stage"] == "export"
    assert df.loc[URL.format(2), "cause"] == "typo"


def test_fsync_runs_before_append_returns_with_the_data_on_disk(tmp_path, monkeypatch):
    path = tmp_path / "alice.jsonl"
    seen = []
    real_fsync = os.fsync

    def spy(fd):  # the real fsync still runs; we record what the file held at that moment
        if path.exists():
            seen.append(path.read_text())
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    append_records(path, [{"url": URL.format(1), "x": 1}])
    assert seen and '"x": 1' in seen[0]


def test_torn_tail_from_a_crash_is_dropped_and_the_rest_kept(tmp_path):
    path = tmp_path / "alice.jsonl"
    append_records(path, [{"url": URL.format(1), "n": 1}])
    with path.open("a") as fh:
        fh.write('{"url": "https://github.com/pytorch/pytorch/issues/2", "n": ')  # crash mid-append
    assert [r["n"] for r in read_records(path)] == [1]
    append_records(path, [{"url": URL.format(3), "n": 3}])
    lines = path.read_text().splitlines()
    assert [json.loads(x)["n"] for x in lines] == [1, 3]


def test_concurrent_thread_appends_lose_nothing(tmp_path):
    store = LabelStore(tmp_path, "alice", load_codebook())
    n_threads, per = 8, 40

    def work(t):
        for i in range(per):
            store.save(URL.format(t * 1000 + i), GOOD, note=f"t{t} i{i} " + "x" * 300)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = read_records(store.path)
    assert len(recs) == n_threads * per
    assert len({r["url"] for r in recs}) == n_threads * per
    assert len(store.path.read_text().splitlines()) == n_threads * per


def _append_many(path: str, worker: int, per: int) -> None:
    for i in range(per):
        append_records(path, [{"url": URL.format(worker * 1000 + i), "worker": worker, "pad": "y" * 500}])


def test_concurrent_process_appends_lose_nothing(tmp_path):
    path = tmp_path / "shared.jsonl"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, 60)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    recs = read_records(path)
    assert len(recs) == 180
    assert {r["worker"] for r in recs} == {0, 1, 2}
    assert len(latest_records(path)) == 180
