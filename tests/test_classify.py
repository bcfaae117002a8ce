"""Classifier stage end to end: titles in the store, train, cross-validate, classify a crawled store.

Real embedding model (bundled, offline), real SQLite in tmp_path, a slice of the study's
labelled issues (titles from ../shared/paper; skipped when it is absent), and a store filled
by crawling the project's GitHub emulator over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.classify.data import labelled_texts
from pipeline.classify.embed import Embedder, embed_texts
from pipeline.classify.evaluate import cross_val_predictions, evaluate
from pipeline.classify.model import OTHER, IssueModel, merge_rare
from pipeline.classify.predict import classify_issues, low_confidence, predictions_for, unlabelled_filtered_urls, write_queue
from pipeline.classify.titles import record_titles, titles_for
from pipeline.classify.train import train_model
from pipeline.errors import UserError
from pipeline.label_files.files import read_labels, write_csv
from pipeline.paths import PROJECT_ROOT
from pipeline.store.db import connect
from tests.helpers import paper_dir, run_mine

os.environ["HF_HUB_OFFLINE"] = "1"
PER_CONVERTER = 40  # issues per converter in the slice: enough for 5 folds, small enough to be quick


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A labels folder holding a slice of the study (80 issues) and a store with their titles."""
    from pipeline.label_files.study_import import import_study

    paper = paper_dir()
    root = tmp_path_factory.mktemp("study")
    result = import_study(paper, out_dir=root / "import")
    full = read_labels(result.files["study"])
    # a fixed, label-diverse slice: every converter's first issues by number
    part = full.sort_values(["converter", "number"]).groupby("converter").head(PER_CONVERTER)
    labels = root / "labels"
    labels.mkdir()
    shutil.copy(PROJECT_ROOT / "labels" / "codebook.yaml", labels / "codebook.yaml")
    write_csv(part, labels / "study.csv")
    db = root / "store.db"
    conn = connect(db)
    n = record_titles(conn, [(u, result.titles[u]) for u in part["url"]])
    conn.close()
    assert n == len(part) == 2 * PER_CONVERTER
    return {"labels_dir": labels, "db": db, "csv": labels / "study.csv", "titles": result.titles}


@pytest.fixture(scope="module")
def embedder():
    return Embedder()


def test_record_titles_upserts_and_validates(tmp_path):
    conn = connect(tmp_path / "t.db")
    url = "https://github.com/pytorch/pytorch/issues/49403"
    assert record_titles(conn, [(url, "old"), ("https://github.com/onnx/tensorflow-onnx/issues/7", "t2"), (url + "0", None)]) == 2
    assert record_titles(conn, iter([(url, "  new \n title ")])) == 1
    assert titles_for(conn, [url]) == {url: "new title"}
    assert conn.execute("SELECT origin FROM issue_titles WHERE url = ?", (url,)).fetchone()[0] == "study"
    with pytest.raises(UserError, match="not a GitHub issue URL"):
        record_titles(conn, [("https://example.com/x", "t")])


def test_merge_rare_names_what_it_merged():
    y, merged = merge_rare(["a"] * 6 + ["b"] * 2 + ["c"], 5)
    assert merged == ["b", "c"] and y.count(OTHER) == 3


def test_fit_predict_save_load(study, embedder, tmp_path):
    conn = connect(study["db"])
    data = labelled_texts(conn, [study["csv"]], "title")
    assert data.text_kind == "title" and len(data.texts) == 2 * PER_CONVERTER
    emb = embed_texts(data.texts, embedder, conn, progress=False)
    model = IssueModel().fit(data.texts, emb, data.labels)
    probs = model.predict_proba(data.texts[:5], emb[:5])
    assert set(probs) == {"stage", "symptom", "cause"}
    for dim, table in probs.items():
        assert np.allclose(table.sum(axis=1), 1.0)
        assert list(table.columns) == model.metadata["categories"][dim]
        merged = model.metadata["merged_categories"][dim]
        assert (OTHER in table.columns) == bool(merged)
        assert not set(merged) & set(table.columns)
    path = model.save(tmp_path / "m.joblib")
    again = IssueModel.load(path)
    assert again.model_id == model.model_id
    for dim in probs:
        assert np.allclose(again.predict_proba(data.texts[:5], emb[:5])[dim].values, probs[dim].values)
    (tmp_path / "bad.joblib").write_text("nope")
    with pytest.raises(UserError, match="not a model file"):
        IssueModel.load(tmp_path / "bad.joblib")


def test_cross_val_predictions_is_out_of_fold_and_complete(study, embedder):
    conn = connect(study["db"])
    data = labelled_texts(conn, [study["csv"]], "title")
    emb = embed_texts(data.texts, embedder, conn, progress=False)
    cv = cross_val_predictions(data.texts, emb, data.labels, ["symptom", "cause"], repeats=2, seed=3)
    for dim, res in cv.items():
        n = len(data.labels)
        assert res.proba.shape == (2, n, len(res.classes))
        assert np.allclose(res.proba.sum(axis=2), 1.0)  # every issue predicted in every repetition
        assert res.confusion.values.sum() == 2 * n
        rates = res.confusion_rates
        assert np.allclose(rates.sum(axis=1)[res.confusion.sum(axis=1) > 0], 1.0)
        assert res.index == data.labels["url"].tolist()
    # same seed, same result: the folds and the models are deterministic
    again = cross_val_predictions(data.texts, emb, data.labels, ["symptom"], repeats=2, seed=3)
    assert np.allclose(again["symptom"].proba, cv["symptom"].proba)


def test_evaluate_report_shape(study, embedder):
    conn = connect(study["db"])
    data = labelled_texts(conn, [study["csv"]], "title")
    emb = embed_texts(data.texts, embedder, conn, progress=False)
    rep = evaluate(data.texts, emb, data.labels, repeats=1, seed=0, text_kind=data.text_kind)
    assert rep["n"] == 2 * PER_CONVERTER and rep["text"] == "title"
    for dim in ("stage", "symptom", "cause"):
        for m in ("model", "majority", "tfidf"):
            r = rep["dimensions"][dim][m]
            assert 0 <= r["accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1
            assert set(r["per_category"]) == set(rep["dimensions"][dim]["categories"])
        assert 0 <= rep["calibration"][dim]["ece"] <= 1
    assert set(rep["transfer"]) == {"tf2onnx->torch.onnx", "torch.onnx->tf2onnx"}
    assert rep["transfer"]["tf2onnx->torch.onnx"]["stage"]["n_test"] == PER_CONVERTER
    json.dumps(rep)  # the report is plain JSON


def _crawl_emulator(db: Path) -> None:
    from pipeline.crawl.client import GitHubClient
    from pipeline.crawl.crawler import crawl
    from pipeline.emulator.server import EmulatorConfig, run_emulator
    from pipeline.sources import load_sources

    with run_emulator(EmulatorConfig(seed=0, issues=40, rate_limit=100_000)) as emu:
        conn = connect(db)
        summary = crawl(conn, load_sources(), GitHubClient(emu.url, None, backoff_base=0.001), concurrency=4)
        conn.close()
    assert not summary.errors


def test_classify_fills_predictions_for_every_unlabelled_filtered_issue(study, embedder, tmp_path):
    pytest.importorskip("pipeline.crawl.crawler", reason="the crawler is not there yet")
    db = tmp_path / "store.db"
    shutil.copy(study["db"], db)
    _crawl_emulator(db)
    conn = connect(db)
    from pipeline.sample.filter import filtered_issues

    kept = [r["url"] for r in filtered_issues(conn)]
    assert kept
    # a human labelled two of the crawled issues in a labelling session: they are not predicted
    session = tmp_path / "alice.jsonl"
    session.write_text("".join(json.dumps({"url": u, "stage": "node_conversion", "symptom": "crash", "cause": "incompatibility",
                                           "rater": "alice"}) + "\n" for u in kept[:2]))
    todo = unlabelled_filtered_urls(conn, [study["csv"], session])
    assert set(todo) == set(kept[2:])
    model = train_model(conn, embedder, [study["csv"]], text_kind="full", progress=False)
    assert model.metadata["text_kind"] == "title"  # the study issues were not crawled: titles only
    model.save(tmp_path / "m.joblib")
    md = IssueModel.load(tmp_path / "m.joblib").metadata  # what the saved file says about how it was made
    import hashlib
    import sklearn
    from pipeline.codebook import load_codebook

    assert md["embedding_model"] == embedder.model_id and md["codebook_version"] == load_codebook().version
    assert md["label_files"] == {str(study["csv"]): hashlib.sha256(study["csv"].read_bytes()).hexdigest()}
    assert md["training_size"] == {d: 2 * PER_CONVERTER for d in ("stage", "symptom", "cause")}
    assert set(md["categories"]) == set(md["merged_categories"]) == set(md["cv"]["scores"]) == {"stage", "symptom", "cause"}
    assert all(0 <= s["macro_f1"] <= 1 for s in md["cv"]["scores"].values())
    assert md["sklearn_version"] == sklearn.__version__ and md["model_id"].startswith("m-")
    assert md["text_kinds"] == {"title": 2 * PER_CONVERTER}
    res = classify_issues(conn, model, embedder, todo, text_kind="full", progress=False)
    assert res.issues == len(todo) and res.text_kind == "full" and not res.without_text
    preds = predictions_for(conn)
    assert set(preds["model_id"]) == {model.model_id}
    for dim, probs in zip(preds["dimension"], preds["probs"]):  # every category's probability is stored
        assert list(probs) == md["categories"][dim]
    assert set(preds["url"]) == set(todo)
    assert len(preds) == 3 * len(todo)
    assert set(preds["dimension"]) == {"stage", "symptom", "cause"}
    from pipeline.sources import load_sources

    assert preds["converter"].isin([s.name for s in load_sources()]).all()
    assert all(abs(sum(p.values()) - 1) < 1e-4 and max(p.values()) == pytest.approx(q, abs=1e-6)
               for p, q in zip(preds["probs"], preds["probability"]))
    # a second run embeds nothing and replaces the same rows, without even loading the embedding model
    fresh = Embedder()
    res2 = classify_issues(conn, model, fresh, todo, text_kind="full", progress=False)
    assert res2.embed.computed == 0 and res2.embed.cached > 0
    assert fresh._model is None
    assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 3 * len(todo)
    low = low_confidence(preds, 0.99)
    assert list(low["min_probability"]) == sorted(low["min_probability"])
    q = write_queue(low["url"], tmp_path / "queue.txt")
    assert q.read_text().splitlines() == low["url"].tolist()


def test_cli_train_classify_evaluate(study, tmp_path):
    pytest.importorskip("pipeline.crawl.crawler", reason="the crawler is not there yet")
    db = tmp_path / "store.db"
    shutil.copy(study["db"], db)
    _crawl_emulator(db)
    env = {"MINE_LABELS_DIR": str(study["labels_dir"])}
    model_file = tmp_path / "model.joblib"
    r = run_mine("train", "--db", str(db), "--out", str(model_file), env=env)
    assert r.returncode == 0, r.stderr
    assert "trained on 80 issues (text: title)" in r.stdout and model_file.is_file()
    queue = tmp_path / "queue.txt"
    narrow = {**env, "COLUMNS": "80"}
    r = run_mine("classify", "--db", str(db), "--model-file", str(model_file), "--min-confidence", "0.9",
                 "--queue", str(queue), "--limit", "3", env=narrow)
    assert r.returncode == 0, r.stderr
    assert "classified" in r.stdout and queue.is_file()
    urls = queue.read_text().splitlines()
    assert urls and all(u in r.stdout for u in urls[:3])  # whole URLs, least confident first, even at 80 columns
    assert "…" not in r.stdout
    r = run_mine("classify", "--db", str(db), "--model-file", str(model_file), env=env)
    assert r.returncode == 0 and "embedded 0," in r.stdout  # the rerun embeds nothing
    r = run_mine("evaluate", "--db", str(db), "--format", "json", "--repeats", "1", env=env)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    # the issue's contract: {"n", "text", "dimensions": {dim: {method: {"accuracy", "macro_f1"}}}, "transfer"}
    assert rep["n"] == 80 and rep["text"] == "title" and set(rep["dimensions"]) == {"stage", "symptom", "cause"}
    assert rep["text_kinds"] == {"title": 80}
    for dim in rep["dimensions"].values():
        for m in ("model", "majority", "tfidf"):
            assert 0 <= dim[m]["accuracy"] <= 1 and 0 <= dim[m]["macro_f1"] <= 1
    assert set(rep["transfer"]) == {"tf2onnx->torch.onnx", "torch.onnx->tf2onnx"}
    # the table names every acceptance criterion with its numbers, and cuts nothing at 80 columns
    r = run_mine("evaluate", "--db", str(db), "--repeats", "1", env=narrow)
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    for text in ("tf2onnx -> torch.onnx", "torch.onnx -> tf2onnx", "Acceptance criteria", "coverage",
                 "stage: macro-F1 beats majority", "cause: macro-F1 beats TF-IDF", "symptom: accuracy not below majority",
                 "pooled: precision at p >= 0.8", "ECE (top)", "criteria: ", "true category"):
        assert text in r.stdout, text
    r = run_mine("classify", "--db", str(db), "--model-file", str(tmp_path / "none.joblib"), env=env)
    assert r.returncode == 2 and "model file not found" in r.stderr
    r = run_mine("train", "--db", str(db), "--model", str(tmp_path / "nowhere"), env=env)
    assert r.returncode == 2 and "embedding model folder not found" in r.stderr


def _one_line_error(r, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    for n in needles:
        assert n in r.stderr, r.stderr


def test_cli_user_errors_are_one_line(study, tmp_path):
    env = {"MINE_LABELS_DIR": str(study["labels_dir"])}
    db = tmp_path / "store.db"
    shutil.copy(study["db"], db)  # titles of the labelled issues, nothing crawled
    model_file = tmp_path / "model.joblib"
    r = run_mine("train", "--db", str(db), "--out", str(model_file), env=env)
    assert r.returncode == 0, r.stderr
    # a model file whose metadata names another codebook version, or other embeddings
    m = IssueModel.load(model_file)
    m.metadata = {**m.metadata, "codebook_version": "jajal2023-v0"}
    m.save(tmp_path / "old-codebook.joblib")
    m = IssueModel.load(model_file)
    m.metadata = {**m.metadata, "embedding_model": "all-mpnet-base-v2@0123456789ab"}
    m.save(tmp_path / "other-embeddings.joblib")
    _one_line_error(run_mine("classify", "--db", str(db), "--model-file", str(tmp_path / "old-codebook.joblib"), env=env),
                    "old-codebook.joblib", "codebook version jajal2023-v0")
    _one_line_error(run_mine("classify", "--db", str(db), "--model-file", str(tmp_path / "other-embeddings.joblib"), env=env),
                    "other-embeddings.joblib", "all-mpnet-base-v2@0123456789ab")
    # a store with no crawled issue: nothing to classify is an error, not a silent "classified 0"
    _one_line_error(run_mine("classify", "--db", str(db), "--model-file", str(model_file), env=env), "no crawled issues")
    # a store that does not exist is not created empty
    for cmd in (["classify", "--model-file", str(model_file)], ["train"], ["evaluate"]):
        _one_line_error(run_mine(*cmd, "--db", str(tmp_path / "typo.db"), env=env), "typo.db", "no store there")
        assert not (tmp_path / "typo.db").exists()
    # too few labelled issues to cross-validate
    few = tmp_path / "few.csv"
    write_csv(read_labels(study["csv"]).head(3), few)
    _one_line_error(run_mine("evaluate", str(few), "--db", str(db), env=env), "too few labelled issues")
    # a model file that cannot be written
    (tmp_path / "a-file").write_text("")
    _one_line_error(run_mine("train", "--db", str(db), "--out", str(tmp_path / "a-file" / "m.joblib"), env=env),
                    "cannot write the model file")


def test_criteria_tolerate_a_rounding_tie():
    from pipeline.classify.evaluate import criteria

    # the mean of five fold accuracies that average exactly 0.74 comes out as 0.7399999999999999
    acc = float(np.mean([0.7, 0.705, 0.74, 0.76, 0.795]))
    assert acc < 0.74
    dims = {"stage": {"model": {"accuracy": acc, "macro_f1": 0.4}, "majority": {"accuracy": 0.74, "macro_f1": 0.17},
                      "tfidf": {"accuracy": 0.72, "macro_f1": 0.35}}}
    out = criteria({"dimensions": dims, "calibration": {"pooled": {"precision_at_threshold": 0.83}}})
    assert out["stage"]["accuracy_not_below_majority"] and out["all"]
