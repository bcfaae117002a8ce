"""Operator extraction (pipeline.operators): rules, dictionary, gold scores, store refresh, labelling chips."""

from __future__ import annotations

import json

import httpx
import pytest

from pipeline.errors import UserError
from pipeline.operators.dictionary import key, load_dictionary
from pipeline.operators.extract import Operator, extract_operators
from pipeline.paths import shared_dir
from tests.helpers import run_mine


def ops(title: str, body: str = "", comments=(), repo: str | None = None) -> list[str]:
    return [str(o) for o in extract_operators(title, body, list(comments), repo)]


# ------------------------------------------------------------------ the converters' messages

@pytest.mark.parametrize("text, repo, expected", [
    ("Exporting the operator 'aten::new_zeros' to ONNX opset version 17 is not supported.", "pytorch/pytorch",
     ["aten:new_zeros"]),
    ("RuntimeError: Exporting the operator upsample_bicubic2d to ONNX opset version 9 is not supported.", None,
     ["aten:upsample_bicubic2d"]),
    ("UserWarning: ONNX export failed on ATen operator tril because torch.onnx.symbolic_opset9.tril does not exist",
     "pytorch/pytorch", ["aten:tril"]),
    ("ERROR - Unsupported ops: Counter({'MatrixBandPart': 2, 'Bincount': 1})", "onnx/tensorflow-onnx",
     ["tf:Bincount", "tf:MatrixBandPart"]),
    ("ERROR - Tensorflow op [model/lambda/band: MatrixBandPart] is not supported", "onnx/tensorflow-onnx",
     ["tf:MatrixBandPart"]),
    ("[Paddle2ONNX] Oops, there are some operators not supported yet, including multiclass_nms3,while,",
     "PaddlePaddle/Paddle2ONNX", ["paddle:multiclass_nms3", "paddle:while"]),
    ("MissingShapeCalculator: Unable to find a shape calculator for type '<class 'xgboost.sklearn.XGBClassifier'>'.",
     "onnx/sklearn-onnx", ["sklearn:XGBClassifier"]),
    ("NotImplementedError: Converter is not implemented (OperationDescription(domain='', operation_type='Col2Im', version=18))",
     "ENOT-AutoDL/onnx2torch", ["onnx:Col2Im"]),
    ("BackendIsNotSupposedToImplementIt: ScatterND version 16 is not implemented.", "onnx/onnx-tensorflow",
     ["onnx:ScatterND"]),
    ("[ONNXRuntimeError] : 1 : FAIL : Type Error: Type parameter (T) of Optype (Div) bound to two types",
     "pytorch/pytorch", ["onnx:Div"]),
])
def test_converter_messages_name_operator_and_namespace(text, repo, expected):
    assert ops("export fails", f"```\n{text}\n```", repo=repo) == expected


def test_a_user_defined_class_is_not_an_operator():
    msg = "Unable to find a shape calculator for type '<class '__main__.MyWrapper'>'."
    assert ops("conversion fails", msg, repo="onnx/sklearn-onnx") == []


def test_old_paddle2onnx_lists_unsupported_ops_between_rules():
    body = "There's 2 ops are not supported yet\n=========== deformable_conv ===========\n=========== roi_align ==========="
    assert ops("convert fails", body, repo="PaddlePaddle/Paddle2ONNX") == ["paddle:deformable_conv", "paddle:roi_align"]


def test_a_message_fixes_the_namespace_of_a_name_also_seen_as_a_word():
    line = "onnxruntime Fail: Node (Conv__42) Op (Reshape) [ShapeInferenceError] Dimension mismatch"
    assert ops("wrong shape", f"```\n{line}\n```", repo="onnx/tensorflow-onnx") == ["onnx:Reshape"]


# -------------------------------------------------------------- words, context and variants

def test_ambiguous_words_count_only_in_operator_context():
    assert ops("Size of the converted model doubles", repo="pytorch/pytorch") == []
    assert ops("If the shape is dynamic the export fails", repo="pytorch/pytorch") == []
    assert ops("Wrong output of the Shape op after export", repo="pytorch/pytorch") == ["onnx:Shape"]
    assert ops("export of a model with `Range`", repo="pytorch/pytorch") == ["onnx:Range"]
    assert ops("Loop node drops its trip count", repo="onnx/tensorflow-onnx") == ["onnx:Loop"]


def test_distinctive_names_count_anywhere_in_prose_but_not_in_repro_code():
    body = "The GatherND output differs from TensorFlow.\n\n```python\nx = tf.nn.relu(x)\ny = Resize(x)\n```"
    assert ops("Wrong result", body, repo="onnx/tensorflow-onnx") == ["onnx:GatherND"]


def test_spelling_variants_in_operator_context():
    assert ops("the gather_nd op gives wrong values", repo="onnx/onnx-tensorflow") == ["onnx:GatherND"]
    assert ops("conversion of tf.nn.depth_to_space is wrong", repo="onnx/tensorflow-onnx") == ["tf:DepthToSpace"]
    assert ops("aten::add_.Tensor is exported twice", repo="pytorch/pytorch") == ["aten:add"]
    assert key("GatherND") == key("gather_nd") == "gathernd"


def test_python_attributes_and_printed_graphs_are_not_operators():
    assert ops("nn.LSTM and layers.GRU export", repo="pytorch/pytorch") == []
    graph = "```\ngraph(%x : Float(1, 3)):\n  %1 : Float = onnx::Conv[kernel_shape=[3, 3]](%x)\n  return (%1)\n```"
    assert ops("export is slow", graph, repo="pytorch/pytorch") == []


def test_torch_functions_and_handler_frames_name_aten_operators():
    assert ops("torch.tril breaks the export", repo="pytorch/pytorch") == ["aten:tril"]
    frame = ('```\n  File "/site-packages/torch/onnx/symbolic_opset11.py", line 201, in upsample_bilinear2d\n'
             "    raise ValueError\n```")
    assert ops("export fails", frame, repo="pytorch/pytorch") == ["aten:upsample_bilinear2d"]
    link = "see https://github.com/ENOT-AutoDL/onnx2torch/blob/main/onnx2torch/node_converters/scatter_nd.py#L77"
    assert ops("wrong output", link, repo="ENOT-AutoDL/onnx2torch") == ["onnx:ScatterND"]


def test_sklearn_estimators_as_class_names_and_words():
    assert ops("Please support KernelDensity", repo="onnx/sklearn-onnx") == ["sklearn:KernelDensity"]
    assert ops("a converter for Gaussian Process Regressor", repo="onnx/sklearn-onnx") == ["sklearn:GaussianProcessRegressor"]
    # a plain word of another namespace's vocabulary is not an estimator
    assert ops("LogisticRegression output", repo="pytorch/pytorch") == []


def test_issue_without_operators_and_empty_text():
    assert ops("pip cannot install the package", "try a fresh virtual environment", repo="onnx/tensorflow-onnx") == []
    assert extract_operators("") == []


def test_operator_parse_and_families():
    assert Operator.parse("onnx:Resize") == Operator("onnx", "Resize")
    with pytest.raises(ValueError):
        Operator.parse("Resize")
    d = load_dictionary()
    assert d.family("aten", "upsample_bilinear2d") == "Resize"
    assert d.family("onnx", "GatherND") == "GatherND"
    assert d.family("tf", "Minimum") == "Min"


# ------------------------------------------------------------------------------ dictionary

def test_committed_dictionary_matches_the_installed_onnx_and_torch():
    import onnx
    import torch

    from pipeline.operators.dictionary import aten_names, onnx_names

    d = load_dictionary()
    installed_onnx, v = onnx_names()
    if v in d.sources["onnx"]:
        assert set(installed_onnx) == d.names["onnx"]
    else:  # a newer onnx only adds operators (schemas keep their history)
        assert d.names["onnx"] <= set(installed_onnx), f"onnx {onnx.__version__}: regenerate the dictionary"
    installed_aten, v = aten_names()
    assert torch.__version__ in d.sources["aten"], "torch is pinned: the dictionary was built from it"
    assert set(installed_aten) == d.names["aten"]
    for ns in ("tf", "paddle", "sklearn"):
        assert len(d.names[ns]) > 100, ns
    assert {"Resize", "GatherND", "If", "LabelEncoder"} <= d.names["onnx"]  # every domain, ai.onnx.ml included
    assert {"upsample_bilinear2d", "new_zeros"} <= d.names["aten"]


# ------------------------------------------------------------------------------------ gold

def _issue_files():
    d = shared_dir() / "github-issues"
    if not (d / "converter-issues.jsonl").is_file():
        pytest.skip(f"real issue text not found at {d} (../shared is only on project machines and CI)")
    return d


def test_gold_file_is_labels_only_and_covers_both_files_and_six_converters():
    from pipeline.operators.gold import read_gold

    gold = read_gold()
    assert len(gold) >= 40
    assert {g.split for g in gold} == {"dev", "heldout"}
    repos = {g.url.split("/")[3] + "/" + g.url.split("/")[4] for g in gold}
    assert len(repos) == 6
    assert any(not g.operators for g in gold) and any(g.operators for g in gold)
    import csv

    from pipeline.operators.gold import default_gold

    with default_gold().open(encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == ["url", "split", "operators", "note"]  # no title or body column
        assert all(len(r["note"]) < 120 for r in reader)


def test_extractor_meets_the_targets_on_dev_and_heldout_gold():
    d = _issue_files()
    res = run_mine("operators", "evaluate", "--json", "--issues", str(d / "study-issues.jsonl"),
                   "--issues", str(d / "converter-issues.jsonl"))
    assert res.returncode == 0, res.stderr
    scores = json.loads(res.stdout)
    for split in ("dev", "heldout", "all"):
        assert scores[split]["precision"] >= 0.90, (split, scores[split])
        assert scores[split]["recall"] >= 0.85, (split, scores[split])
    assert scores["all"]["issues"] >= 40


def test_bad_gold_rows_are_one_line_errors(tmp_path):
    from pipeline.operators.gold import read_gold

    p = tmp_path / "gold.csv"
    p.write_text("url,split,operators,note\nhttps://github.com/a/b/issues/1,dev,foo:Bar,\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"gold.csv:2: operators: unknown namespace"):
        read_gold(p)
    p.write_text("url,split,operators,note\nhttps://github.com/a/b/issues/1,test,,\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"gold.csv:2: split 'test'"):
        read_gold(p)
    res = run_mine("operators", "evaluate", "--gold", str(p))
    assert res.returncode == 2 and "Traceback" not in res.stderr


# ----------------------------------------------------------------------------------- store

def test_refresh_extracts_only_changed_issues_and_a_new_extractor_version(tmp_path, monkeypatch):
    from pipeline.operators import extract
    from pipeline.operators.store import operators_by_url, refresh_operators
    from pipeline.store.db import connect
    from tests.label_store import insert_issue, write_demo_store

    db = tmp_path / "s.db"
    urls = write_demo_store(db)
    conn = connect(db)
    first = refresh_operators(conn)
    assert first.issues == len(urls) and first.extracted == len(urls)
    assert operators_by_url(conn)[urls[0]] == [Operator("aten", "upsample_bicubic2d")]
    assert refresh_operators(conn).extracted == 0
    insert_issue(conn, "pytorch/pytorch", 91002, "torch.onnx.export hangs", "Exporting the operator 'aten::roll' to "
                 "ONNX opset version 9 is not supported.", ["module: onnx"], "2023-03-12T10:00:00Z")
    again = refresh_operators(conn)
    assert again.extracted == 1
    assert operators_by_url(conn)["https://github.com/pytorch/pytorch/issues/91002"] == [Operator("aten", "roll")]
    monkeypatch.setattr(extract, "RULES_VERSION", "test-next")
    assert refresh_operators(conn).extracted == len(urls)
    versions = {r[0] for r in conn.execute("SELECT version FROM operator_extractions")}
    assert versions == {extract.extractor_version()}


# ------------------------------------------------------------------------- labelling page

def test_operator_chips_beside_the_title_and_in_label_studio_tasks(tmp_path):
    from pipeline.codebook import load_codebook
    from pipeline.labelling.app import LabelSession, create_app
    from pipeline.labelling.labelstudio import export_tasks, labeling_config
    from pipeline.labelling.serve import BackgroundServer
    from pipeline.store.db import connect
    from tests.label_store import insert_issue, write_demo_store

    db = tmp_path / "s.db"
    urls = write_demo_store(db)
    conn = connect(db)
    evil = insert_issue(conn, "pytorch/pytorch", 91009, "aten::<script>x</script> fails",
                        "Exporting the operator 'aten::roll' to ONNX opset version 9 is not supported.",
                        ["module: onnx"], "2023-03-12T10:00:00Z")
    session = LabelSession(rater="alice", queue=[urls[0], evil], db_path=db, labels_dir=tmp_path / "labels")
    with BackgroundServer(create_app(session)) as url, httpx.Client(base_url=url.rstrip("/")) as client:
        page = client.get("/item/0").text
        assert '<span class="op-chip">aten:upsample_bicubic2d</span>' in page
        evil_page = client.get("/item/1").text
        assert '<span class="op-chip">aten:roll</span>' in evil_page
        assert "<script>x</script>" not in evil_page
    tasks = export_tasks([urls[0], urls[2]], conn, load_codebook())
    assert tasks[0]["data"]["operators"] == "aten:upsample_bicubic2d"
    assert tasks[1]["data"]["operators"] == "(no operator named)"
    assert 'value="$operators"' in labeling_config(load_codebook())


def test_operator_commands_have_help_and_report_operators_routes_there(tmp_path):
    top = run_mine("--help")
    assert "operators" in top.stdout
    for sub in ("evaluate", "refresh", "extract", "build-dictionary", "report"):
        res = run_mine("operators", sub, "--help")
        assert res.returncode == 0 and "Usage:" in res.stdout, (sub, res.stderr)
    res = run_mine("report", "operators", "--help")
    assert res.returncode == 0 and "Operator tables" in res.stdout
    missing = run_mine("report", "operators", "--db", str(tmp_path / "nope.db"))
    assert missing.returncode == 2 and "no store there" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
