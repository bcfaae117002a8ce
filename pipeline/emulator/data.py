"""Deterministic synthetic issue data for the GitHub emulator.

Everything here is a pure function of ``(seed, issues)``: the same configuration always
yields the same repositories, issues, pull requests and timelines, so crawler tests can
compare what they fetched against :func:`expected_issue_numbers` and the per-issue ground
truth (``IssueRecord.linkage`` / ``IssueRecord.data_available``).

Repositories: the six ONNX converters the paper names (``DEFAULT_REPOS``): pytorch/pytorch,
onnx/tensorflow-onnx, PaddlePaddle/Paddle2ONNX, onnx/sklearn-onnx, ENOT-AutoDL/onnx2torch and
onnx/onnx-tensorflow, each with its real label names (the study's two first: their data does not
depend on the other four). Relevance and cross-reference rules come from the packaged
``pipeline/sources.yaml`` (:func:`study_relevant`, ``Source.xref_repos``).

Shape of the data, per default repository:

* ``issues=N`` real issues, plus pull requests **on top** (about one per four issues),
  interleaved with the issues in one increasing number sequence with small gaps, as on
  GitHub. Pull requests carry a ``pull_request`` key in listings.
* Titles and Markdown bodies describe converter failures (unsupported operators,
  wrong outputs, shape errors, optimizer bugs, build failures), with code blocks and Python
  tracebacks; a few bodies, titles and comments carry hostile HTML, since issue text is
  untrusted.
* Timelines exercise every rule of the study's data-availability filter (see
  ``LINKAGE_KINDS``), plus noise events; some exceed 30 events, a few exceed 100.

Real issues (``corpus=``, records of :mod:`pipeline.emulator.corpus`) are served beside or
instead of the synthetic ones (``synthetic=False``), under their real repository and number,
with their title, body, labels and comments exactly as given. The file has days, not times:
each entry of a thread (description, then comments) gets a time within its day fixed by the
issue's URL, in the thread's order. The timeline is what the study's data-availability filter
keeps: ``labeled`` events for the labels, one ``commented`` event per comment (author, time,
body), then a ``closed`` event with a ``commit_id`` (closed issues) or a ``referenced`` event
with one (open issues); ``updated_at`` is the last event. A missing author is served as
``ghost``, GitHub's login for deleted accounts; a missing body as ``null``. An issue dated
nowhere (no day, no comments) takes the day of the nearest lower-numbered dated issue of its
repository in the corpus (issue numbers grow with time), else of the nearest higher one.
Corpus issues never enter synthetic timelines, so adding a corpus changes no synthetic issue.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.emulator.corpus import CorpusIssue
    from pipeline.sources import Source

DEFAULT_REPOS = ("pytorch/pytorch", "onnx/tensorflow-onnx", "PaddlePaddle/Paddle2ONNX", "onnx/sklearn-onnx",
                 "ENOT-AutoDL/onnx2torch", "onnx/onnx-tensorflow")

# Other repositories that cross-reference the served ones (served only embedded in events):
# outside every source's xref_repos but onnx/onnx, which the four newer sources count.
FOREIGN_REPOS = ("microsoft/onnxruntime", "onnx/onnx", "NVIDIA/TensorRT")
# frameworks the newer sources count as cross-reference repositories (sources.yaml xref_repos)
XREF_FOREIGN_REPOS = ("PaddlePaddle/Paddle", "scikit-learn/scikit-learn", "onnx/onnxmltools", "tensorflow/tensorflow")

# How an issue's timeline links it to a fix. `True` = the study's data-availability filter
# keeps it (closed/referenced event with commit_id, cross-reference from a closed issue in one
# of its source's xref_repos, e.g. pytorch/pytorch or onnx/tensorflow-onnx, or a connected event).
LINKAGE_KINDS: dict[str, bool] = {
    "closed_commit": True,  # closed event with a commit_id
    "referenced_commit": True,  # referenced event with a commit_id
    "xref_closed_same": True,  # cross-referenced from a closed issue/PR of the same repository
    "xref_closed_study": True,  # ... from a closed issue/PR of another repository its source counts
    "connected": True,  # connected event
    "none": False,  # closed without any link
    "closed_nocommit_referenced_nocommit": False,  # referenced event whose commit_id is null
    "xref_open_same": False,  # cross-referenced from an open issue/PR of the same repository
    "xref_closed_foreign": False,  # ... from a closed issue of a repository its source does not count
    "xref_open_foreign": False,  # ... from an open issue of such a repository
}
_LINKAGE_WEIGHTS = {
    "closed_commit": 10, "referenced_commit": 8, "xref_closed_same": 8, "xref_closed_study": 4,
    "connected": 4, "none": 30, "closed_nocommit_referenced_nocommit": 8, "xref_open_same": 10,
    "xref_closed_foreign": 10, "xref_open_foreign": 8,
}

START = int(datetime(2018, 1, 1, tzinfo=timezone.utc).timestamp())
END = int(datetime(2024, 12, 31, tzinfo=timezone.utc).timestamp())

HOSTILE_SNIPPETS = (
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "[click for the repro](javascript:alert(1))",
    '<iframe src="https://evil.example/"></iframe>',
    '<a href="javascript:alert(document.cookie)">model.onnx</a>',
    "<svg onload=alert(1)>",
)


def rng_for(seed: int, *parts: object) -> random.Random:
    """A generator seeded from the emulator seed and a path of names (stable across runs)."""
    return random.Random(f"{seed}:" + ":".join(map(str, parts)))


def iso(ts: int) -> str:
    """Epoch seconds -> GitHub's ``YYYY-MM-DDTHH:MM:SSZ``."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha1(*parts: object) -> str:
    return hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Event:
    """One timeline entry, kept compact; rendered to GitHub's JSON by ``render``."""

    kind: str  # GitHub's `event` value
    at: int  # epoch seconds
    actor: str  # login
    id: int
    data: dict = field(default_factory=dict)  # commit_id, label, body, source, assignee, ...


@dataclass
class IssueRecord:
    """One issue or pull request. Mutable only through ``Dataset.touch``."""

    repo: str  # "owner/name"
    number: int
    id: int
    is_pr: bool
    title: str
    body: str | None
    author: str
    author_association: str
    labels: list[str]
    state: str  # "open" | "closed"
    created_at: int
    updated_at: int
    closed_at: int | None
    closed_by: str | None
    state_reason: str | None
    assignee: str | None
    linkage: str = "none"
    events: list[Event] = field(default_factory=list)
    merged_at: int | None = None
    real: bool = False  # from a corpus file, not synthetic

    @property
    def comments(self) -> int:
        return sum(1 for e in self.events if e.kind == "commented")

    @property
    def data_available(self) -> bool:
        """Ground truth of the study's data-availability filter for this issue."""
        return LINKAGE_KINDS.get(self.linkage, False)


@dataclass
class RepoInfo:
    full_name: str
    id: int
    description: str
    created_at: int
    label_colors: dict[str, str]
    language: str = "Python"

    @property
    def owner(self) -> str:
        return self.full_name.split("/")[0]

    @property
    def name(self) -> str:
        return self.full_name.split("/")[1]


# --------------------------------------------------------------------------- vocabularies

_ATEN_OPS = (
    "unflatten", "scaled_dot_product_attention", "grid_sampler", "roll", "unique_dim", "stft",
    "fft_rfft", "im2col", "col2im", "upsample_bicubic2d", "index_put", "linalg_norm", "bucketize",
    "searchsorted", "triu", "embedding_bag", "_native_multi_head_attention", "group_norm",
    "einsum", "cumsum", "masked_scatter", "aminmax", "repeat_interleave", "pixel_unshuffle",
)
_TF_OPS = (
    "TensorScatterUpdate", "RaggedTensorToTensor", "StridedSlice", "BatchMatMulV3",
    "FusedBatchNormV3", "MatrixBandPart", "Einsum", "TensorListReserve", "StatelessWhile",
    "NonMaxSuppressionV5", "CTCGreedyDecoder", "Bincount", "ResizeBilinear", "RFFT", "Roll",
    "DepthToSpace", "SparseToDense", "UniqueV2", "CombinedNonMaxSuppression", "Conv3DBackpropInputV2",
)
_MODELS = (
    "resnet50", "yolov5s", "BERT-base", "GPT-2", "ViT-B/16", "MobileNetV3", "EfficientDet-D0",
    "DETR", "wav2vec2", "T5-small", "UNet", "LSTM seq2seq", "Mask R-CNN", "Whisper-tiny",
)
_OPTIMIZERS = ("TransposeOptimizer", "ConstFoldOptimizer", "LoopOptimizer", "IdentityOptimizer",
               "ReshapeOptimizer", "fold_constants")
_NON_ONNX_PT = (
    ("module: nn", "nn.{layer} returns NaN with float16 inputs"),
    ("module: cuda", "CUDA error: an illegal memory access in {layer} backward"),
    ("module: dataloader", "DataLoader hangs with num_workers > 0 on {model}"),
    ("oncall: pt2", "torch.compile graph break in {layer} forward"),
    ("module: optimizer", "AdamW with fused=True diverges for {model}"),
)
_LAYERS = ("LayerNorm", "MultiheadAttention", "Conv3d", "GRU", "Embedding", "BatchNorm2d", "Upsample")

_FIRST = ("alex", "bo", "chen", "dima", "eli", "fatima", "gao", "hiro", "ines", "jun", "kai",
          "lena", "mo", "nadia", "omar", "priya", "quinn", "ravi", "sara", "tomas", "uma", "vik",
          "wei", "xin", "yuki", "zoe")
_SUFFIX = ("-ml", "dev", "99", "-ai", "_cv", "x", "-nlp", "42", "-dl", "codes")

PT_LABELS = {"module: onnx": "f7e101", "triaged": "0e8a16", "onnx-triaged": "0e8a16",
             "module: dynamo": "c5def5", "module: nn": "1d76db", "module: cuda": "1d76db",
             "module: dataloader": "1d76db", "oncall: pt2": "d4c5f9", "module: optimizer": "1d76db",
             "open source": "ededed", "Merged": "5319e7"}
TF_LABELS = {"bug": "d73a4a", "question": "d876e3", "pending on user response": "fbca04",
             "enhancement": "a2eeef", "tflite": "0052cc", "keras": "0052cc",
             "need investigation": "e99695", "contribution welcome": "0e8a16"}
# the other converters' real label names (../shared/github-issues/converter-issues.jsonl; see
# the comments in pipeline/sources.yaml); onnx/onnx-tensorflow labels no issue
PADDLE_LABELS = {"Bug": "d73a4a", "Operator(New)": "0e8a16", "Operator(Update)": "c2e0c6", "PaddleOCR": "1d76db",
                 "PaddleDetection": "1d76db", "Build": "fbca04", "CI": "fbca04", "ONNXRuntime(Version)": "bfdadc",
                 "Paddle(Version)": "bfdadc", "ONNX(Version)": "bfdadc", "stale": "ededed"}
SKL_LABELS = {"bug": "d73a4a", "pending user response": "fbca04", "duplicate": "cfd3d7", "cannot replicate": "e4e669",
              "documentation": "0075ca", "new converter": "a2eeef", "todo": "c5def5", "done": "0e8a16",
              "0.23": "bfdadc", "0.24": "bfdadc"}
O2T_LABELS = {"bug": "d73a4a", "feat": "a2eeef", "Stale": "ededed"}
REPO_LABELS = {"pytorch/pytorch": PT_LABELS, "onnx/tensorflow-onnx": TF_LABELS, "PaddlePaddle/Paddle2ONNX": PADDLE_LABELS,
               "onnx/sklearn-onnx": SKL_LABELS, "ENOT-AutoDL/onnx2torch": O2T_LABELS, "onnx/onnx-tensorflow": {}}
# id, description and creation day of each served repository's GitHub object
_REPO_META = {
    "pytorch/pytorch": (65_600_975, "Tensors and Dynamic neural networks in Python with strong GPU acceleration",
                        datetime(2016, 8, 13, 5, 26, 41, tzinfo=timezone.utc)),
    "onnx/tensorflow-onnx": (125_317_000, "Convert TensorFlow, Keras, Tensorflow.js and Tflite models to ONNX",
                             datetime(2018, 3, 23, 17, 3, 5, tzinfo=timezone.utc)),
    "PaddlePaddle/Paddle2ONNX": (210_002_000, "ONNX model exporter for PaddlePaddle",
                                 datetime(2019, 6, 27, 3, 12, 40, tzinfo=timezone.utc)),
    "onnx/sklearn-onnx": (210_003_000, "Convert scikit-learn models and pipelines to ONNX",
                          datetime(2018, 11, 28, 9, 41, 2, tzinfo=timezone.utc)),
    "ENOT-AutoDL/onnx2torch": (210_004_000, "Convert ONNX models to PyTorch",
                               datetime(2021, 12, 14, 11, 20, 33, tzinfo=timezone.utc)),
    "onnx/onnx-tensorflow": (210_005_000, "Tensorflow backend for ONNX",
                             datetime(2017, 9, 8, 15, 50, 11, tzinfo=timezone.utc)),
}


def _user_pool(seed: int) -> list[str]:
    r = rng_for(seed, "users")
    names = sorted({f"{a}{b}" for a in _FIRST for b in _SUFFIX})
    r.shuffle(names)
    return names[:80]


MAINTAINERS = {
    "pytorch/pytorch": ["onnx-maint-a", "onnx-maint-b", "onnx-maint-c"],
    "onnx/tensorflow-onnx": ["tf2onnx-maint-a", "tf2onnx-maint-b"],
    "PaddlePaddle/Paddle2ONNX": ["paddle2onnx-maint-a", "paddle2onnx-maint-b"],
    "onnx/sklearn-onnx": ["skl2onnx-maint-a"],
    "ENOT-AutoDL/onnx2torch": ["onnx2torch-maint-a", "onnx2torch-maint-b"],
    "onnx/onnx-tensorflow": ["onnx-tf-maint-a", "onnx-tf-maint-b"],
}
BOT = "emu-mergebot[bot]"
# GitHub's placeholder account for deleted users (id 10137); served where a corpus excerpt does
# not name the author
GHOST = "ghost"
GHOST_ID = 10137


def user_id(login: str) -> int:
    """A stable numeric id for a login (GitHub's own id for ``ghost``)."""
    if login == GHOST:
        return GHOST_ID
    return 1_000_000 + int(hashlib.sha1(login.encode()).hexdigest()[:7], 16)


# --------------------------------------------------------------------------- text


def _traceback_pt(op: str, r: random.Random) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "export.py", line 14, in <module>\n'
        "    torch.onnx.export(model, (x,), \"model.onnx\", opset_version=%d)\n"
        '  File "/usr/lib/python3.10/site-packages/torch/onnx/utils.py", line 516, in export\n'
        "    _export(\n"
        '  File "/usr/lib/python3.10/site-packages/torch/onnx/utils.py", line 1613, in _export\n'
        "    graph, params_dict, torch_out = _model_to_graph(\n"
        "torch.onnx.errors.UnsupportedOperatorError: Exporting the operator 'aten::%s' to ONNX "
        "opset version %d is not supported. Please feel free to request support or submit a "
        "pull request on PyTorch GitHub: https://github.com/pytorch/pytorch/issues"
        % (r.choice((11, 13, 14, 17)), op, r.choice((11, 13, 14, 17)))
    )


def _traceback_tf(op: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/usr/lib/python3.9/runpy.py", line 197, in _run_module_as_main\n'
        '    return _run_code(code, main_globals, None,\n'
        '  File "/usr/lib/python3.9/site-packages/tf2onnx/convert.py", line 710, in <module>\n'
        "    main()\n"
        '  File "/usr/lib/python3.9/site-packages/tf2onnx/tfonnx.py", line 290, in tensorflow_onnx_mapping\n'
        "    raise ValueError(\"tensorflow op \" + op.type + \" is not supported\")\n"
        f"ValueError: tensorflow op {op} is not supported"
    )


def _pt_issue_text(r: random.Random, kind: str) -> tuple[str, str]:
    op, model = r.choice(_ATEN_OPS), r.choice(_MODELS)
    opset = r.choice((11, 13, 14, 16, 17, 18))
    code = (
        "```python\nimport torch\n\nclass M(torch.nn.Module):\n    def forward(self, x):\n"
        f"        return torch.ops.aten.{op}(x)\n\nx = torch.randn(2, 3, 8, 8)\n"
        f'torch.onnx.export(M(), (x,), "m.onnx", opset_version={opset})\n```\n'
    )
    env = (
        "### Versions\n\n```\nPyTorch version: 2.%d.0\nONNX version: 1.%d.0\n"
        "onnxruntime: 1.%d.1\nOS: Ubuntu 22.04\n```\n" % (r.randint(0, 5), r.randint(12, 16), r.randint(14, 19))
    )
    if kind == "unsupported":
        title = f"[ONNX] Exporting the operator 'aten::{op}' to ONNX opset version {opset} is not supported"
        body = f"### 🐛 Describe the bug\n\nExporting a model that uses `{op}` fails.\n\n{code}\n```\n{_traceback_pt(op, r)}\n```\n\n{env}"
    elif kind == "wrong":
        diff = r.choice(("0.0312", "1.7e+00", "nan", "4.5e-01"))
        title = f"[ONNX] Exported {model} gives different outputs than PyTorch after {op}"
        body = (f"### 🐛 Describe the bug\n\nThe exported model runs in onnxruntime but the outputs "
                f"differ from eager PyTorch (max abs diff `{diff}`).\n\n{code}\n"
                "```\nAssertionError: Tensor-likes are not close!\nMismatched elements: 96 / 384 (25.0%)\n"
                f"Greatest absolute difference: {diff} at index (0, 1, 3, 3)\n```\n\n{env}")
    elif kind == "shape":
        title = f"[ONNX] Shape inference fails for {op} with dynamic_axes on {model}"
        body = (f"### 🐛 Describe the bug\n\nWith `dynamic_axes={{'x': {{0: 'batch'}}}}` the exported graph "
                f"has a static shape and onnxruntime rejects other batch sizes.\n\n{code}\n"
                "```\nonnxruntime.capi.onnxruntime_pybind11_state.InvalidArgument: [ONNXRuntimeError] : 2 : "
                "INVALID_ARGUMENT : Got invalid dimensions for input: x for the following indices\n"
                " index: 0 Got: 4 Expected: 2\n```\n\n" + env)
    elif kind == "optimizer":
        title = f"[ONNX] Constant folding pass removes {op} node and breaks {model} export"
        body = (f"### 🐛 Describe the bug\n\n`do_constant_folding=True` drops the `{op}` node.\n\n{code}\n"
                "```\nonnx.onnx_cpp2py_export.checker.ValidationError: Nodes in a graph must be "
                "topologically sorted, however input '/Constant_output_0' of node: name: /Gather OpType: "
                "Gather is not output of any previous nodes.\n```\n\n" + env)
    elif kind == "build":
        title = "[ONNX] Build failure: onnx submodule fails to compile with protobuf %d" % r.choice((3, 4, 21))
        body = ("### 🐛 Describe the bug\n\nBuilding from source fails in third_party/onnx.\n\n"
                "```\nthird_party/onnx/onnx/onnx_pb.h:52:10: fatal error: onnx/onnx-ml.pb.h: No such file or directory\n"
                "compilation terminated.\nninja: build stopped: subcommand failed.\n```\n\n" + env)
    else:  # dynamo exporter
        title = f"torch.onnx.dynamo_export fails on {model}: {op} not supported"
        body = (f"### 🐛 Describe the bug\n\n{code}\n```\ntorch.onnx._internal.exporter.OnnxExporterError: "
                f"Failed to export the model to ONNX. Unsupported FX nodes: {{'call_function': ['aten.{op}.default']}}\n```\n\n{env}")
    return title, body


def _tf_issue_text(r: random.Random, kind: str) -> tuple[str, str]:
    op, model = r.choice(_TF_OPS), r.choice(_MODELS)
    opset = r.choice((9, 11, 13, 15, 17))
    cmd = f"```\npython -m tf2onnx.convert --saved-model ./{model.lower().replace(' ', '_')} --output model.onnx --opset {opset}\n```\n"
    env = ("**System information**\n- OS Platform: Ubuntu 20.04\n- TensorFlow version: 2.%d\n"
           "- tf2onnx version: 1.%d.0\n- Python version: 3.%d\n" % (r.randint(4, 15), r.randint(8, 16), r.randint(7, 11)))
    if kind == "unsupported":
        title = f"ValueError: tensorflow op {op} is not supported"
        body = f"**Describe the bug**\nConverting {model} fails.\n\n{env}\n**To Reproduce**\n{cmd}\n```\n{_traceback_tf(op)}\n```\n"
    elif kind == "wrong":
        title = f"Converted {model} produces wrong results compared to TensorFlow ({op})"
        body = (f"**Describe the bug**\nThe ONNX model runs but its outputs do not match TF.\n\n{env}\n"
                "```python\nimport numpy as np\nnp.testing.assert_allclose(tf_out, onnx_out, rtol=1e-3)\n```\n"
                "```\nAssertionError: \nNot equal to tolerance rtol=0.001, atol=0\nMismatched elements: 12 / 1000 (1.2%)\n```\n")
    elif kind == "shape":
        title = f"Shape mismatch after conversion: {op} output has rank 3, expected 4"
        body = (f"**Describe the bug**\n{cmd}\n```\nonnxruntime.capi.onnxruntime_pybind11_state.Fail: "
                f"[ONNXRuntimeError] : 1 : FAIL : Node ({op}__42) Op (Reshape) [ShapeInferenceError] "
                "Dimension could not be inferred: incompatible shapes\n```\n\n" + env)
    elif kind == "optimizer":
        opt = r.choice(_OPTIMIZERS)
        title = f"{opt} breaks {model} graph containing {op}"
        body = (f"**Describe the bug**\nAfter `{opt}` the model fails the ONNX checker.\n\n{cmd}\n"
                "```\nonnx.onnx_cpp2py_export.checker.ValidationError: Field 'shape' of 'type' is required but missing.\n```\n\n" + env)
    elif kind == "build":
        title = "Build failure: pip install tf2onnx fails on Python 3.%d (onnx wheel)" % r.randint(10, 12)
        body = ("**Describe the bug**\n```\nERROR: Could not build wheels for onnx, which is required to "
                "install pyproject.toml-based projects\n```\n\n" + env)
    else:  # question
        title = f"How to convert {model} with a dynamic batch size?"
        body = f"I want to convert {model} so the batch dimension stays dynamic. Is `--inputs x:0[-1,224,224,3]` the right way?\n\n{env}"
    return title, body


_PADDLE_OPS = ("deformable_conv", "roll", "einsum", "multiclass_nms3", "grid_sampler", "set_value",
               "lookup_table_v2", "conditional_block", "while", "top_k_v2", "bilinear_interp_v2", "index_select",
               "flip", "prior_box", "tril_triu")
_PADDLE_MODELS = (("PP-OCRv4_det", "PaddleOCR"), ("PP-OCRv3_rec", "PaddleOCR"), ("SLANet", "PaddleOCR"),
                  ("PP-YOLOE+", "PaddleDetection"), ("PicoDet-S", "PaddleDetection"), ("RT-DETR", "PaddleDetection"),
                  ("PP-LCNet", None), ("PP-HumanSeg", None))
_SKL_ESTIMATORS = (("ensemble", "IsolationForest"), ("ensemble", "HistGradientBoostingClassifier"),
                   ("gaussian_process", "GaussianProcessRegressor"), ("feature_extraction.text", "TfidfVectorizer"),
                   ("neighbors", "KNeighborsClassifier"), ("multiclass", "OneVsOneClassifier"),
                   ("preprocessing", "QuantileTransformer"), ("preprocessing", "SplineTransformer"),
                   ("preprocessing", "TargetEncoder"), ("linear_model", "SGDOneClassSVM"),
                   ("compose", "ColumnTransformer"))
_ONNX_OPS = ("If", "Loop", "GRU", "NonZero", "GlobalMaxPool", "GreaterOrEqual", "ScatterND", "RoiAlign",
             "DepthToSpace", "Einsum", "LSTM", "Resize", "BatchNormalization", "Slice", "NonMaxSuppression",
             "InstanceNormalization", "ConvTranspose", "GatherND")


def _paddle_issue_text(r: random.Random, kind: str) -> tuple[str, str, list[str]]:
    op, (model, suite) = r.choice(_PADDLE_OPS), r.choice(_PADDLE_MODELS)
    opset = r.choice((11, 13, 15, 16, 17))
    cmd = (f"```\npaddle2onnx --model_dir ./{model} --model_filename inference.pdmodel "
           f"--params_filename inference.pdiparams --save_file model.onnx --opset_version {opset}\n```\n")
    info = ("**Informations (please complete the following information):**\n - Inference engine for deployment: "
            f"{r.choice(('onnxruntime', 'TensorRT', 'OpenVINO'))}\n - Why convert to onnx: deployment\n"
            f" - Paddle2ONNX Version: 1.{r.randint(0, 3)}.{r.randint(0, 9)}\n")
    labels = [suite] if suite and r.random() < 0.5 else []
    if kind == "unsupported":
        title = r.choice((f"Oops, there are some operators not supported yet, including {op}",
                          f"{model} 转 ONNX 报错：不支持 {op}", f"{op} is not supported when exporting {model}"))
        body = (f"**Describe the bug**\nConverting {model} stops.\n\n{cmd}\n```\n[Paddle2ONNX] Oops, there are some "
                f"operators not supported yet, including {op},\n[ERROR] Due to the unsupported operators, the "
                f"conversion is aborted.\n```\n\n{info}")
        labels.append("Operator(New)")
    elif kind == "wrong":
        title = r.choice((f"{model} 转换后 onnxruntime 推理结果与 Paddle 不一致", f"Accuracy drops after converting {model} to ONNX"))
        body = (f"**Describe the bug**\nThe converted model runs, but its outputs differ from Paddle Inference "
                f"(max diff {r.choice(('0.21', '3.5', 'nan'))}).\n\n{cmd}\n{info}")
        labels += ["Bug"] + (["ONNXRuntime(Version)"] if r.random() < 0.3 else [])
    elif kind == "shape":
        title = f"Dynamic batch size fails for {op} in {model}"
        body = (f"**Describe the bug**\n{cmd}\n```\nonnxruntime.capi.onnxruntime_pybind11_state.Fail: [ONNXRuntimeError] : "
                f"1 : FAIL : Node (p2o.{op}.0) Op ({op.title()}) [ShapeInferenceError] Incompatible dimensions\n```\n\n{info}")
        labels.append("Bug")
    elif kind == "optimizer":
        title = f"ONNX checker fails after paddle2onnx fuses {op} in {model}"
        body = (f"**Describe the bug**\n{cmd}\n```\nonnx.onnx_cpp2py_export.checker.ValidationError: Nodes in a graph "
                f"must be topologically sorted (p2o.{op}.1)\n```\n\n{info}")
        labels.append("Bug")
    elif kind == "build":
        title = r.choice(("pip install paddle2onnx fails on Python 3.12", "源码编译 paddle2onnx 失败 (protobuf 版本)"))
        body = ("**Describe the bug**\n```\nERROR: Could not find a version that satisfies the requirement paddle2onnx\n"
                f"```\n\n{info}")
        labels.append("Build")
    else:
        title = f"如何导出动态 shape 的 {model} ONNX 模型？"
        body = f"Which options keep the input shape of {model} dynamic?\n\n{info}"
    if r.random() < 0.25:
        labels.append("stale")  # closed for inactivity by the repository's bot
    return title, body, labels


def _skl_issue_text(r: random.Random, kind: str) -> tuple[str, str, list[str]]:
    mod, est = r.choice(_SKL_ESTIMATORS)
    code = ("```python\nfrom skl2onnx import to_onnx\n\nonx = to_onnx(model, X[:1].astype(numpy.float32), "
            f"target_opset={r.choice((15, 17, 18, 19))})\n```\n")
    env = f"skl2onnx {r.choice(('1.14.1', '1.16.0', '1.17.0'))}, scikit-learn 1.{r.randint(2, 5)}, onnxruntime 1.{r.randint(15, 19)}\n"
    labels: list[str] = []
    if kind == "unsupported":
        title = f"Unable to find a shape calculator for type '<class 'sklearn.{mod}.{est}'>'"
        body = (f"{code}\n```\nskl2onnx.common.exceptions.MissingShapeCalculator: Unable to find a shape calculator "
                f"for type '<class 'sklearn.{mod}.{est}'>'.\nIt usually means the pipeline being converted contains a "
                "transformer or a predictor with no corresponding converter implemented in sklearn-onnx.\n```\n\n" + env)
        labels += ["new converter"] if r.random() < 0.5 else []
    elif kind == "wrong":
        title = f"Predictions of the converted {est} differ from scikit-learn"
        body = (f"{code}\n```\nAssertionError: \nNot equal to tolerance rtol=1e-05, atol=0\nMismatched elements: "
                f"{r.randint(2, 40)} / 100\n```\n\n" + env)
        labels.append("bug")
    elif kind == "shape":
        title = f"{est} converter returns the wrong output shape with options={{'zipmap': False}}"
        body = f"{code}\nThe probabilities come back with shape (N,) instead of (N, 2).\n\n" + env
        labels.append("bug")
    elif kind == "optimizer":
        title = f"float64 inputs are cast to float32 inside the converted {est}"
        body = f"{code}\nWith a double input the model still computes in float and loses precision.\n\n" + env
        labels.append("bug")
    elif kind == "build":
        title = f"import skl2onnx fails with onnx 1.{r.randint(14, 17)}: module 'onnx' has no attribute 'mapping'"
        body = "```\nAttributeError: module 'onnx' has no attribute 'mapping'\n```\n\n" + env
        labels.append("bug")
    else:
        title = f"How to convert a pipeline with a custom transformer and {est}?"
        body = f"Is there an example of registering a converter for my own transformer?\n\n{env}"
        labels += ["pending user response"] if r.random() < 0.5 else []
        labels += ["duplicate"] if r.random() < 0.2 else []
    if r.random() < 0.05:
        labels.append("cannot replicate")
    if r.random() < 0.08:
        labels.append(r.choice(("0.23", "0.24")))
    return title, body, labels


def _o2t_issue_text(r: random.Random, kind: str) -> tuple[str, str, list[str]]:
    op, model, version = r.choice(_ONNX_OPS), r.choice(_MODELS), r.choice((1, 7, 9, 11, 13, 16))
    code = "```python\nimport onnx\nfrom onnx2torch import convert\n\ntorch_model = convert(onnx.load(\"model.onnx\"))\n```\n"
    labels: list[str] = []
    if kind == "unsupported":
        title = (f"NotImplementedError: Converter is not implemented (OperationDescription(domain='', "
                 f"operation_type='{op}', version={version}))")
        body = (f"Converting {model} exported with opset {version}:\n\n{code}\n```\n  File \".../onnx2torch/node_converters/"
                "registry.py\", line 69, in get_converter\n    raise NotImplementedError(f'Converter is not implemented "
                f"({{description}})')\nNotImplementedError: Converter is not implemented (OperationDescription(domain='', "
                f"operation_type='{op}', version={version}))\n```\n")
        labels += ["feat"] if r.random() < 0.4 else []
    elif kind == "wrong":
        title = f"Converted {model} gives different outputs than onnxruntime"
        body = f"{code}\nThe max abs difference is {r.choice(('0.8', '12.3', 'inf'))} after the {op} node.\n"
        labels.append("bug")
    elif kind == "shape":
        title = f"KeyError in the {op} converter with a dynamic input shape"
        body = f"{code}\n```\nKeyError: 'onnx::{op}_{r.randint(100, 999)}'\n```\n"
        labels.append("bug")
    elif kind == "optimizer":
        title = f"torch.fx symbolic trace of the converted {model} fails at {op}"
        body = f"{code}\n```\ntorch.fx.proxy.TraceError: symbolically traced variables cannot be used as inputs to control flow\n```\n"
        labels.append("bug")
    elif kind == "build":
        title = f"onnx2torch cannot be installed with onnx 1.{r.randint(15, 17)}"
        body = "```\nERROR: Cannot install onnx2torch because these package versions have conflicting dependencies.\n```\n"
    else:
        title = f"Can a model converted by onnx2torch be exported back to ONNX ({model})?"
        body = f"{code}\nI would like to fine-tune it in PyTorch and export it again.\n"
    if r.random() < 0.2:
        labels.append("Stale")
    return title, body, labels


def _otf_issue_text(r: random.Random, kind: str) -> tuple[str, str, list[str]]:
    op, model = r.choice(_ONNX_OPS), r.choice(_MODELS)
    code = ("```python\nimport onnx\nfrom onnx_tf.backend import prepare\n\ntf_rep = prepare(onnx.load(\"model.onnx\"))\n"
            "tf_rep.export_graph(\"saved_model\")\n```\n")
    env = (f"**Python, ONNX, ONNX-TF, Tensorflow version**\n - Python version: 3.{r.randint(7, 10)}\n - ONNX version: "
           f"1.{r.randint(8, 14)}.0\n - ONNX-TF version: 1.{r.randint(6, 10)}.0\n - Tensorflow version: 2.{r.randint(3, 12)}.0\n")
    if kind == "unsupported":
        title = f"BackendIsNotSupposedToImplementIt: {op} is not implemented."
        body = (f"**Describe the bug**\nprepare() fails for {model}.\n\n{code}\n```\nonnx.backend.test.runner."
                f"BackendIsNotSupposedToImplementIt: {op} is not implemented.\n```\n\n{env}")
    elif kind == "wrong":
        title = f"Outputs of {model} differ between onnxruntime and the converted TensorFlow model"
        body = f"**Describe the bug**\n{code}\nThe outputs disagree after the {op} node.\n\n{env}"
    elif kind == "shape":
        title = f"ValueError: Dimensions must be equal in {op} when exporting {model}"
        body = f"**Describe the bug**\n{code}\n```\nValueError: Dimensions must be equal, but are 64 and 128\n```\n\n{env}"
    elif kind == "optimizer":
        title = f"export_graph fails for {model}: {op} handler produces an invalid SavedModel"
        body = f"**Describe the bug**\n{code}\n```\ntensorflow.python.framework.errors_impl.InvalidArgumentError\n```\n\n{env}"
    elif kind == "build":
        title = f"pip install onnx-tf fails with tensorflow 2.{r.randint(10, 15)} (tensorflow-addons)"
        body = f"**Describe the bug**\n```\nERROR: No matching distribution found for tensorflow-addons\n```\n\n{env}"
    else:
        title = f"How to convert an ONNX {model} to TFLite with onnx-tf?"
        body = f"Is there a recommended way from the SavedModel to a .tflite file?\n\n{env}"
    return title, body, []


# text and labels of a synthetic issue of the four newer converters
_CONVERTER_TEXT = {"PaddlePaddle/Paddle2ONNX": _paddle_issue_text, "onnx/sklearn-onnx": _skl_issue_text,
                   "ENOT-AutoDL/onnx2torch": _o2t_issue_text, "onnx/onnx-tensorflow": _otf_issue_text}
# pull request titles of the four ({op} is a converter-specific operator or estimator name)
_PR_TITLES = {
    "PaddlePaddle/Paddle2ONNX": (_PADDLE_OPS, ("[Operator] Add {op}", "[Bug] Fix {op} mapper for opset 17")),
    "onnx/sklearn-onnx": (tuple(e for _, e in _SKL_ESTIMATORS), ("Add converter for {op}", "Fix discrepancies in {op}")),
    "ENOT-AutoDL/onnx2torch": (_ONNX_OPS, ("feat: add {op} converter", "fix: {op} with dynamic shapes")),
    "onnx/onnx-tensorflow": (_ONNX_OPS, ("Add handler for {op}", "Fix {op} handler for opset 13")),
}

_KINDS = ("unsupported", "unsupported", "wrong", "shape", "optimizer", "build", "other")


# --------------------------------------------------------------------------- dataset


class Dataset:
    """All repositories, issues and timelines for one configuration.

    ``issues`` synthetic issues per repository (``sizes`` overrides it per repository; none
    with ``synthetic=False``), plus the real ``corpus`` issues (see the module docstring).
    """

    def __init__(self, seed: int = 0, issues: int = 200, repos: Iterable[str] = DEFAULT_REPOS, *,
                 corpus: Sequence["CorpusIssue"] = (), synthetic: bool = True,
                 sizes: Mapping[str, int] | None = None):
        if issues < 0:
            raise ValueError("issues must be >= 0")
        bad = {r: n for r, n in (sizes or {}).items() if n < 0}
        if bad:
            raise ValueError(f"issues per repository must be >= 0, got {bad}")
        self.seed = seed
        self.n_issues = issues
        self.synthetic = synthetic
        self.sizes = {r.lower(): n for r, n in (sizes or {}).items()}
        self.users = _user_pool(seed)
        self.repos: dict[str, RepoInfo] = {}
        self.issues: dict[str, dict[int, IssueRecord]] = {}
        self.foreign: dict[tuple[str, int], IssueRecord] = {}
        self.deleted: set[tuple[str, int]] = set()   # (repo, number) answered 410 Gone, not listed
        self._touch_count = 0
        self.repo_names = tuple(repos)
        unknown = sorted(set(self.sizes) - {r.lower() for r in self.repo_names})
        if unknown:
            raise ValueError(f"issues per repository given for {', '.join(unknown)}, which is not served; "
                             f"served: {', '.join(self.repo_names)}")
        for k, full in enumerate(self.repo_names):
            rid, description, created = _REPO_META.get(full, (170_000_000 + 1000 * k, full, datetime(2018, 1, 1, tzinfo=timezone.utc)))
            self.repos[full] = RepoInfo(full_name=full, id=rid, description=description,
                                        created_at=int(created.timestamp()), label_colors=dict(REPO_LABELS.get(full, {})))
            self.issues[full] = self._base_issues(k, full)
        for k, full in enumerate(self.repo_names):
            for idx, rec in enumerate(self.issues[full].values()):
                self._timeline(k, rec, idx)
        for k, full in enumerate(FOREIGN_REPOS + XREF_FOREIGN_REPOS):
            self.repos.setdefault(full, RepoInfo(full_name=full, id=150_000_000 + k, description=f"{full} (foreign)",
                                                 created_at=START, label_colors={}, language="C++"))
        # after every synthetic timeline: real issues never become synthetic cross-reference sources
        self._add_corpus(corpus)

    # ---- lookups

    def canonical_repo(self, owner: str, name: str) -> str | None:
        """The stored ``owner/name`` of a served repository, matched case-insensitively."""
        want = f"{owner}/{name}".lower()
        for full in self.repo_names:
            if full.lower() == want:
                return full
        return None

    def get(self, repo: str, number: int) -> IssueRecord | None:
        return self.issues.get(repo, {}).get(number)

    def is_deleted(self, repo: str, number: int) -> bool:
        return (repo, number) in self.deleted

    def listed(self, repo: str) -> list[IssueRecord]:
        """The records of ``repo`` a listing can return (deleted issues are gone from it)."""
        return [x for x in self.issues.get(repo, {}).values() if (repo, x.number) not in self.deleted]

    def delete(self, repo: str, number: int) -> bool:
        """Delete issue ``number`` as GitHub does: it leaves the listings and its own endpoints
        answer 410 Gone (its record stays, so other timelines that mention it still render).
        Returns whether it existed and was not deleted yet."""
        if number not in self.issues.get(repo, {}) or (repo, number) in self.deleted:
            return False
        self.deleted.add((repo, number))
        return True

    # ---- generation

    def n_synthetic(self, repo: str) -> int:
        """Synthetic issues (pull requests not counted) of ``repo``."""
        return self.sizes.get(repo.lower(), self.n_issues) if self.synthetic else 0

    def _base_issues(self, k: int, repo: str) -> dict[int, IssueRecord]:
        r = rng_for(self.seed, repo, "base")
        n = self.n_synthetic(repo)
        n_prs = n // 4
        kinds = [False] * n + [True] * n_prs
        r.shuffle(kinds)
        total = len(kinds)
        times = sorted(r.randint(START, END - 86400 * 40) for _ in range(total))
        # far above the real repositories' numbers, so no synthetic issue shares a URL with a real
        # (e.g. a study-labelled) one
        number = 900_000 if repo == "pytorch/pytorch" else 90_000  # every other real repository is below 90,000
        out: dict[int, IssueRecord] = {}
        issue_idx = 0
        for i, is_pr in enumerate(kinds):
            number += r.randint(1, 9)
            ir = rng_for(self.seed, repo, number)
            created = times[i]
            author = ir.choice(self.users)
            maint = MAINTAINERS.get(repo, ["maintainer"])
            if is_pr:
                rec = self._make_pr(repo, number, ir, created, author, maint)
            else:
                rec = self._make_issue(repo, number, ir, created, author, maint, issue_idx)
                issue_idx += 1
            rec.id = 1_000_000_000 + 100_000_000 * k + number
            out[number] = rec
        return out

    def _make_issue(self, repo, number, ir, created, author, maint, idx) -> IssueRecord:
        kind = _KINDS[ir.randrange(len(_KINDS))]
        pt = repo == "pytorch/pytorch"
        labels: list[str]
        if repo in _CONVERTER_TEXT:
            title, body, labels = _CONVERTER_TEXT[repo](ir, kind)
        elif pt:
            if ir.random() < 0.72:
                title, body = _pt_issue_text(ir, kind if kind != "other" else "dynamo")
                labels = ["module: onnx"] + ([ "triaged"] if ir.random() < 0.6 else []) + (
                    ["onnx-triaged"] if ir.random() < 0.3 else [])
            else:
                label, tmpl = ir.choice(_NON_ONNX_PT)
                title = tmpl.format(layer=ir.choice(_LAYERS), model=ir.choice(_MODELS))
                body = "### 🐛 Describe the bug\n\n```python\nimport torch\n# minimal repro\n```\n"
                labels = [label] + (["triaged"] if ir.random() < 0.5 else [])
        else:
            u = ir.random()
            if u < 0.15 or kind == "other":
                title, body = _tf_issue_text(ir, "question")
                labels = ["question"] + (["pending on user response"] if ir.random() < 0.3 else [])
            else:
                title, body = _tf_issue_text(ir, kind)
                labels = []
                if u < 0.27:
                    labels.append("pending on user response")
                if ir.random() < 0.5:
                    labels.append("bug")
                if ir.random() < 0.2:
                    labels.append(ir.choice(("tflite", "keras", "need investigation", "enhancement")))
        # Untrusted text: guarantee some hostile bodies and titles per repository.
        if idx % 17 == 5 or ir.random() < 0.02:
            body += "\n\n" + HOSTILE_SNIPPETS[(idx + number) % len(HOSTILE_SNIPPETS)] + "\n"
        if idx % 41 == 9:
            title = "<img src=x onerror=alert(1)> " + title
        closed = ir.random() < 0.78
        closed_at = created + ir.randint(3600, 86400 * 30) if closed else None
        return IssueRecord(
            repo=repo, number=number, id=0, is_pr=False, title=title, body=body, author=author,
            author_association=ir.choice(("NONE", "NONE", "NONE", "CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR")),
            labels=labels, state="closed" if closed else "open", created_at=created,
            updated_at=created, closed_at=closed_at,
            closed_by=(ir.choice(maint) if closed else None),
            state_reason=(ir.choice(("completed", "completed", "not_planned")) if closed else None),
            assignee=ir.choice(maint) if ir.random() < 0.25 else None,
        )

    def _make_pr(self, repo, number, ir, created, author, maint) -> IssueRecord:
        pt = repo == "pytorch/pytorch"
        if repo in _PR_TITLES:
            ops, templates = _PR_TITLES[repo]
            op = ir.choice(ops)
            title = ir.choice(templates).format(op=op)
        else:
            op = ir.choice(_ATEN_OPS if pt else _TF_OPS)
            title = ir.choice((f"[ONNX] Add symbolic for aten::{op}", f"[ONNX] Fix export of {op} with dynamic shapes",
                               f"[ONNX] Support opset 18 for {op}") if pt else
                              (f"Add conversion for {op}", f"Fix {op} handler for dynamic shapes",
                               f"Optimizer: skip {op} in transpose pushing"))
        body = f"Fixes the export of `{op}`.\n\n- adds a handler\n- adds a unit test\n"
        labels = (["module: onnx", "open source"] + (["Merged"] if ir.random() < 0.7 else [])) if pt and ir.random() < 0.8 else []
        closed = ir.random() < 0.85
        closed_at = created + ir.randint(3600, 86400 * 20) if closed else None
        merged = closed and ir.random() < 0.8
        return IssueRecord(
            repo=repo, number=number, id=0, is_pr=True, title=title, body=body, author=author,
            author_association="CONTRIBUTOR", labels=labels, state="closed" if closed else "open",
            created_at=created, updated_at=created, closed_at=closed_at,
            closed_by=(BOT if merged else ir.choice(maint)) if closed else None, state_reason=None,
            assignee=None, merged_at=closed_at if merged else None,
        )

    def _pick_source(self, r: random.Random, repo: str, state: str, exclude: int) -> IssueRecord | None:
        cands = [x for x in self.issues.get(repo, {}).values() if x.state == state and x.number != exclude]
        prs = [x for x in cands if x.is_pr]
        pool = prs if prs and r.random() < 0.7 else cands
        return r.choice(pool) if pool else None

    def _foreign_issue(self, r: random.Random, state: str, at: int, repos: Sequence[str] = FOREIGN_REPOS) -> IssueRecord:
        repo = r.choice(repos)
        number = r.randint(1000, 20000)
        while (repo, number) in self.foreign:
            number += 1
        closed_at = at + r.randint(3600, 86400 * 10) if state == "closed" else None
        rec = IssueRecord(
            repo=repo, number=number, id=2_000_000_000 + number + 100_000 * (FOREIGN_REPOS + XREF_FOREIGN_REPOS).index(repo),
            is_pr=False, title=f"Model exported from {r.choice(('PyTorch', 'tf2onnx'))} fails in {repo.split('/')[1]}",
            body="Cross-posting from the converter's tracker.", author=r.choice(self.users),
            author_association="NONE", labels=[], state=state, created_at=at, updated_at=closed_at or at,
            closed_at=closed_at, closed_by=None, state_reason="completed" if state == "closed" else None,
            assignee=None,
        )
        self.foreign[(repo, number)] = rec
        return rec

    def _timeline(self, k: int, rec: IssueRecord, idx: int) -> None:
        """Fill ``rec.events`` and set ``rec.updated_at`` from them."""
        r = rng_for(self.seed, rec.repo, rec.number, "timeline")
        maint = MAINTAINERS.get(rec.repo, ["maintainer"])
        seq = [0]
        base_id = 3_000_000_000 + 2_000_000_000 * k + rec.number * 10_000
        end = rec.closed_at or (rec.created_at + 86400 * r.randint(1, 60))
        evs: list[Event] = []

        def add(kind: str, at: int, actor: str, **data) -> None:
            seq[0] += 1
            evs.append(Event(kind=kind, at=at, actor=actor, id=base_id + seq[0], data=data))

        def between() -> int:
            return r.randint(rec.created_at + 60, max(rec.created_at + 61, end - 60))

        for lab in rec.labels:
            add("labeled", rec.created_at + r.randint(60, 7200), r.choice(maint), label=lab)
        if rec.assignee:
            add("assigned", between(), r.choice(maint), assignee=rec.assignee)
        # Position-dependent long timelines guarantee some > 30 events and, from the 14th
        # record on, at least one > 100 events per repository.
        n_noise = r.randint(0, 8)
        if idx % 20 == 7:
            n_noise = r.randint(31, 45)
        if idx % 150 == 13:
            n_noise = r.randint(101, 110)
        n_comments = r.randint(0, 6) + (n_noise // 3 if n_noise > 30 else 0)
        for j in range(n_comments):
            who = r.choice(self.users + maint)
            body = r.choice((
                "I can reproduce this with the latest nightly.",
                "Could you share the full model or a smaller repro?",
                "Same problem here with opset 17.\n\n```\nRuntimeError: ONNX export failed\n```",
                "Any update on this? It blocks our deployment.",
                "This should be fixed on main; please try the nightly build.",
            ))
            if (rec.number + j) % 53 == 0:
                body += " " + HOSTILE_SNIPPETS[j % len(HOSTILE_SNIPPETS)]
            add("commented", between(), who, body=body,
                association="MEMBER" if who in maint else "NONE")
        for _ in range(n_noise):
            t = between()
            kind = r.choice(("subscribed", "mentioned", "labeled", "unlabeled", "subscribed"))
            if kind == "mentioned":
                who = r.choice(maint)
                add("mentioned", t, who)
                add("subscribed", t, who)
            elif kind in ("labeled", "unlabeled") and self.repos[rec.repo].label_colors:
                add(kind, t, r.choice(maint), label=r.choice(sorted(self.repos[rec.repo].label_colors)))
            else:  # a repository without labels subscribes instead
                add("subscribed" if kind in ("labeled", "unlabeled") else kind, t, r.choice(self.users))

        if rec.is_pr:
            self._pr_timeline(rec, r, add, between, maint)
        else:
            self._linkage(k, rec, r, add, between, maint)
        evs.sort(key=lambda e: (e.at, e.id))
        rec.events = evs
        last = max([rec.created_at, rec.closed_at or 0] + [e.at for e in evs])
        rec.updated_at = last + r.randint(0, 600)

    def _pr_timeline(self, rec, r, add, between, maint) -> None:
        for c in range(r.randint(1, 4)):
            add("committed", between(), rec.author, sha=sha1(self.seed, rec.repo, rec.number, "c", c),
                message=f"{rec.title} (part {c + 1})")
        if rec.merged_at:
            commit = sha1(self.seed, rec.repo, rec.number, "merge")
            add("merged", rec.merged_at, BOT, commit_id=commit)
            add("closed", rec.merged_at, BOT, commit_id=None, state_reason=None)
        elif rec.closed_at:
            add("closed", rec.closed_at, rec.closed_by or r.choice(maint), commit_id=None, state_reason=None)
        rec.linkage = "pull_request"

    def _linkage(self, k, rec, r, add, between, maint) -> None:
        names = list(_LINKAGE_WEIGHTS)
        kind = r.choices(names, weights=[_LINKAGE_WEIGHTS[n] for n in names])[0]
        if rec.state == "open" and kind == "closed_commit":
            kind = "referenced_commit"
        # the repositories a cross-reference may come from, as the source's xref_repos decide
        counted = {x.lower() for x in xref_repos(rec.repo)}
        other = [x for x in self.repo_names if x != rec.repo and x.lower() in counted]
        counted_foreign = [x for x in XREF_FOREIGN_REPOS + FOREIGN_REPOS if x.lower() in counted]
        outside = [x for x in FOREIGN_REPOS if x.lower() not in counted]
        source = None
        if kind in ("xref_closed_same", "xref_open_same"):
            source = self._pick_source(r, rec.repo, "closed" if kind == "xref_closed_same" else "open", rec.number)
        elif kind == "xref_closed_study":
            if other:
                source = self._pick_source(r, other[0], "closed", -1)
            elif counted_foreign:
                source = self._foreign_issue(r, "closed", between(), counted_foreign)
        elif kind in ("xref_closed_foreign", "xref_open_foreign"):
            source = self._foreign_issue(r, "closed" if kind == "xref_closed_foreign" else "open", between(), outside)
        if kind.startswith("xref") and source is None:
            kind = "none"
        close_commit = None
        if kind == "closed_commit":
            close_commit = sha1(self.seed, rec.repo, rec.number, "fix")
        elif kind == "referenced_commit":
            add("referenced", between(), r.choice(maint), commit_id=sha1(self.seed, rec.repo, rec.number, "ref"))
        elif kind == "closed_nocommit_referenced_nocommit":
            add("referenced", between(), r.choice(self.users), commit_id=None)
        elif kind == "connected":
            add("connected", between(), r.choice(maint))
        elif source is not None:
            at = max(rec.created_at + 60, source.created_at + 60)
            add("cross-referenced", at, source.author, source=(source.repo, source.number))
        if rec.state == "closed":
            add("closed", rec.closed_at, rec.closed_by or r.choice(maint), commit_id=close_commit,
                state_reason=rec.state_reason)
        rec.linkage = kind

    # ---- real issues

    def _serve_repo(self, repo: str) -> str:
        """The served spelling of ``repo``, adding it (no synthetic issues) when it is new."""
        owner, _, name = repo.partition("/")
        full = self.canonical_repo(owner, name)
        if full is None:
            full = repo
            self.repo_names += (full,)
            self.repos[full] = RepoInfo(full_name=full, id=170_000_000 + 1000 * len(self.repo_names),
                                        description=full, created_at=START, label_colors={})
            self.issues[full] = {}
        return full

    def _add_corpus(self, corpus: Sequence["CorpusIssue"]) -> None:
        undated = _undated_days(corpus)
        for item in corpus:
            full = self._serve_repo(item.repo)
            if item.number in self.issues[full]:
                raise UserError(f"{item.where}: {item.url} has the number of a synthetic issue "
                                "(serve the corpus alone: --no-synthetic)")
            colors = self.repos[full].label_colors
            for lab in item.labels:
                colors.setdefault(lab, sha1("label", lab)[:6])
            self.issues[full][item.number] = self._corpus_record(full, item, undated.get((full.lower(), item.number)))

    def _corpus_record(self, full: str, item: "CorpusIssue", day: str | None) -> IssueRecord:
        k = self.repo_names.index(full)
        key = f"{full.lower()}#{item.number}"
        r = rng_for("corpus", key)  # real issues look the same whatever the seed
        first = item.created_at or (item.comments[0].created_at if item.comments else day) or iso(START)[:10]
        times = thread_times(key, [first] + [c.created_at for c in item.comments])
        maint = MAINTAINERS.get(full, ["maintainer"])
        base_id = 100_000_000_000 + 10_000_000_000 * k + item.number * 10_000
        evs: list[Event] = []

        def add(kind: str, at: int, actor: str, **data) -> None:
            evs.append(Event(kind=kind, at=at, actor=actor, id=len(evs), data=data))

        created = times[0]
        for j, lab in enumerate(item.labels):
            add("labeled", created + 60 * (j + 1), maint[j % len(maint)], label=lab)
        for c, at in zip(item.comments, times[1:]):
            add("commented", at, c.author or GHOST, body=c.body, association="NONE")
        closed = item.state == "closed"
        end = times[-1] + 600 + r.randint(0, 3 * 3600)
        fix = sha1("corpus", key, "fix")
        if closed:
            add("closed", end, maint[0], commit_id=fix, state_reason="completed")
        else:
            add("referenced", end, maint[0], commit_id=fix)
        evs.sort(key=lambda e: (e.at, e.id))
        for seq, e in enumerate(evs, 1):  # ids grow with time, as GitHub's do
            e.id = base_id + seq
        return IssueRecord(
            repo=full, number=item.number, id=4_000_000_000 + 100_000_000 * k + item.number, is_pr=False,
            title=item.title, body=item.body, author=item.author or GHOST, author_association="NONE",
            labels=list(item.labels), state=item.state, created_at=created,
            updated_at=max(e.at for e in evs), closed_at=end if closed else None,
            closed_by=maint[0] if closed else None, state_reason="completed" if closed else None,
            assignee=None, linkage="closed_commit" if closed else "referenced_commit", events=evs, real=True,
        )

    # ---- mutation

    def touch(self, repo: str, n: int, now: int) -> list[int]:
        """Give ``n`` issues a new ``updated_at`` and one new ``commented`` timeline event.

        The choice is deterministic: the ``n`` least recently updated closed issues (not pull
        requests) that the study's relevance filter keeps (see :func:`study_relevant`), ties
        broken by number. The new ``updated_at`` is ``max(now, newest updated_at in the
        repository + 1)``, so it is strictly after every existing one.
        """
        recs = self.issues[repo]
        cands = sorted((x for x in recs.values() if study_relevant(x) and (repo, x.number) not in self.deleted),
                       key=lambda x: (x.updated_at, x.number))
        chosen = cands[: max(0, n)]
        if not chosen:
            return []
        t = max(now, max(x.updated_at for x in recs.values()) + 1)
        k = self.repo_names.index(repo)
        for rec in chosen:
            self._touch_count += 1
            seq = len(rec.events) + 1 + self._touch_count
            who = self.users[(rec.number + self._touch_count) % len(self.users)]
            rec.events.append(Event(
                kind="commented", at=t, actor=who,
                id=3_000_000_000 + 2_000_000_000 * k + rec.number * 10_000 + 5_000 + seq % 5_000,
                data={"body": f"Still happening with the latest nightly (follow-up #{self._touch_count}).",
                      "association": "NONE"},
            ))
            rec.updated_at = t
        return [x.number for x in chosen]


def _day_start(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=timezone.utc).timestamp())


def thread_times(key: str, days: Sequence[str]) -> list[int]:
    """Epoch seconds for the entries of one thread given their days (non-decreasing): each run of
    entries on the same day starts between 08:00 and 12:00 UTC (fixed by ``key`` and the day) and
    is spread over the rest of that day, so the times keep the thread's order and stay in their day."""
    out: list[int] = []
    i = 0
    while i < len(days):
        j = i
        while j < len(days) and days[j] == days[i]:
            j += 1
        start = 8 * 3600 + int(sha1("time", key, days[i])[:8], 16) % (4 * 3600)
        step = max(1, min(5400, (86399 - start) // (j - i)))
        base = _day_start(days[i])
        out += [base + start + q * step for q in range(j - i)]
        i = j
    return out


def _undated_days(corpus: Sequence["CorpusIssue"]) -> dict[tuple[str, int], str]:
    """``(repo, number) -> day`` for the issues that carry no day at all: the day of the nearest
    lower-numbered dated issue of the same repository, else of the nearest higher one."""
    dated: dict[str, list[tuple[int, str]]] = {}
    for x in corpus:
        day = x.created_at or (x.comments[0].created_at if x.comments else None)
        if day:
            dated.setdefault(x.repo.lower(), []).append((x.number, day))
    out = {}
    for x in corpus:
        if x.created_at or x.comments:
            continue
        known = sorted(dated.get(x.repo.lower(), []))
        if not known:
            continue
        i = bisect.bisect_left(known, (x.number, ""))
        out[(x.repo.lower(), x.number)] = known[i - 1][1] if i > 0 else known[0][1]
    return out


@functools.lru_cache(maxsize=1)
def _packaged_sources() -> dict[str, "Source"]:
    """The packaged sources (never ``$MINE_SOURCES``: synthetic data depends on the seed alone), by repository."""
    from pipeline.sources import DEFAULT_SOURCES, load_sources

    return {s.repo.lower(): s for s in load_sources(DEFAULT_SOURCES)}


def xref_repos(repo: str) -> tuple[str, ...]:
    """The repositories whose closed issues' cross-references the data-availability filter counts for ``repo``."""
    from pipeline.sources import DEFAULT_XREF_REPOS

    src = _packaged_sources().get(repo.lower())
    return src.xref_repos if src is not None else DEFAULT_XREF_REPOS


def study_relevant(rec: IssueRecord) -> bool:
    """The relevance rule of ``rec``'s source in the packaged ``sources.yaml``: e.g. a closed issue
    (not a PR) with label `module: onnx` in pytorch/pytorch, or without `question` / `pending on user
    response` in tensorflow-onnx. A closed issue of a repository no source covers is relevant."""
    if rec.is_pr or rec.state != "closed":
        return False
    src = _packaged_sources().get(rec.repo.lower())
    return src is None or src.is_relevant({"state": rec.state, "labels": rec.labels})


def filter_issues(recs: Iterable[IssueRecord], state: str = "open", labels: Iterable[str] = (),
                  since: int | None = None) -> list[IssueRecord]:
    """GitHub's listing filter: state (open|closed|all), all of `labels` (case-insensitive),
    and `updated_at >= since`. Pull requests are included, as on GitHub."""
    want = {x.strip().casefold() for x in labels if x.strip()}
    out = []
    for rec in recs:
        if state != "all" and rec.state != state:
            continue
        if want and not want <= {x.casefold() for x in rec.labels}:
            continue
        if since is not None and rec.updated_at < since:
            continue
        out.append(rec)
    return out


def expected_issue_numbers(cfg, repo: str, state: str = "open", labels: Iterable[str] = (),
                           include_prs: bool = True) -> list[int]:
    """Numbers the emulator lists for ``GET /repos/{repo}/issues?state=..&labels=..`` with a
    fresh dataset of ``cfg`` (an ``EmulatorConfig`` or anything with ``seed`` and ``issues``),
    newest first (GitHub's default sort). ``include_prs=False`` drops pull requests."""
    ds = Dataset(seed=cfg.seed, issues=cfg.issues, synthetic=getattr(cfg, "synthetic", True),
                 sizes=getattr(cfg, "repo_issues", None))
    recs = filter_issues(ds.issues[repo].values(), state=state, labels=labels)
    return [x.number for x in sorted(recs, key=lambda x: (x.created_at, x.number), reverse=True)
            if include_prs or not x.is_pr]
