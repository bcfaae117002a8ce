"""Deterministic synthetic issue data for the GitHub emulator.

Everything here is a pure function of ``(seed, issues)``: the same configuration always
yields the same repositories, issues, pull requests and timelines, so crawler tests can
compare what they fetched against :func:`expected_issue_numbers` and the per-issue ground
truth (``IssueRecord.linkage`` / ``IssueRecord.data_available``).

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
import hashlib
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Iterable, Mapping, Sequence

from pipeline.errors import UserError

if TYPE_CHECKING:
    from pipeline.emulator.corpus import CorpusIssue

DEFAULT_REPOS = ("pytorch/pytorch", "onnx/tensorflow-onnx")

# Other repositories that cross-reference the studied ones (served only embedded in events).
FOREIGN_REPOS = ("microsoft/onnxruntime", "onnx/onnx", "NVIDIA/TensorRT")

# How an issue's timeline links it to a fix. `True` = the study's data-availability filter
# keeps it (closed/referenced event with commit_id, cross-reference from a closed issue in
# pytorch/pytorch or onnx/tensorflow-onnx, or a connected event).
LINKAGE_KINDS: dict[str, bool] = {
    "closed_commit": True,  # closed event with a commit_id
    "referenced_commit": True,  # referenced event with a commit_id
    "xref_closed_same": True,  # cross-referenced from a closed issue/PR of the same repository
    "xref_closed_study": True,  # ... from a closed issue/PR of the other studied repository
    "connected": True,  # connected event
    "none": False,  # closed without any link
    "closed_nocommit_referenced_nocommit": False,  # referenced event whose commit_id is null
    "xref_open_same": False,  # cross-referenced from an open issue/PR of the same repository
    "xref_closed_foreign": False,  # ... from a closed issue of a repository outside the study
    "xref_open_foreign": False,  # ... from an open issue of a repository outside the study
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


def _user_pool(seed: int) -> list[str]:
    r = rng_for(seed, "users")
    names = sorted({f"{a}{b}" for a in _FIRST for b in _SUFFIX})
    r.shuffle(names)
    return names[:80]


MAINTAINERS = {
    "pytorch/pytorch": ["onnx-maint-a", "onnx-maint-b", "onnx-maint-c"],
    "onnx/tensorflow-onnx": ["tf2onnx-maint-a", "tf2onnx-maint-b"],
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
        for k, full in enumerate(self.repo_names):
            self.repos[full] = RepoInfo(
                full_name=full,
                id=65_600_975 + 1000 * k if full == "pytorch/pytorch" else 125_316_000 + 1000 * k,
                description=("Tensors and Dynamic neural networks in Python with strong GPU acceleration"
                             if full == "pytorch/pytorch" else "Convert TensorFlow, Keras, Tensorflow.js and Tflite models to ONNX"),
                created_at=int(datetime(2016, 8, 13, 5, 26, 41, tzinfo=timezone.utc).timestamp()) if k == 0
                else int(datetime(2018, 3, 23, 17, 3, 5, tzinfo=timezone.utc).timestamp()),
                label_colors=dict(PT_LABELS if full == "pytorch/pytorch" else TF_LABELS),
            )
            self.issues[full] = self._base_issues(k, full)
        for k, full in enumerate(self.repo_names):
            for idx, rec in enumerate(self.issues[full].values()):
                self._timeline(k, rec, idx)
        for k, full in enumerate(FOREIGN_REPOS):
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
        number = 900_000 if repo == "pytorch/pytorch" else 90_000
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
        if pt:
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

    def _foreign_issue(self, r: random.Random, state: str, at: int) -> IssueRecord:
        repo = r.choice(FOREIGN_REPOS)
        number = r.randint(1000, 20000)
        while (repo, number) in self.foreign:
            number += 1
        closed_at = at + r.randint(3600, 86400 * 10) if state == "closed" else None
        rec = IssueRecord(
            repo=repo, number=number, id=2_000_000_000 + number + 100_000 * FOREIGN_REPOS.index(repo),
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
            elif kind in ("labeled", "unlabeled"):
                add(kind, t, r.choice(maint), label=r.choice(sorted(self.repos[rec.repo].label_colors)))
            else:
                add(kind, t, r.choice(self.users))

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
        other = [x for x in self.repo_names if x != rec.repo]
        source = None
        if kind in ("xref_closed_same", "xref_open_same"):
            source = self._pick_source(r, rec.repo, "closed" if kind == "xref_closed_same" else "open", rec.number)
        elif kind == "xref_closed_study":
            source = self._pick_source(r, other[0], "closed", -1) if other else None
        elif kind in ("xref_closed_foreign", "xref_open_foreign"):
            source = self._foreign_issue(r, "closed" if kind == "xref_closed_foreign" else "open", between())
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


def study_relevant(rec: IssueRecord) -> bool:
    """The study's relevance filter: a closed issue (not a PR) with label `module: onnx` in
    pytorch/pytorch, or without `question` / `pending on user response` in tensorflow-onnx."""
    if rec.is_pr or rec.state != "closed":
        return False
    if rec.repo == "pytorch/pytorch":
        return "module: onnx" in rec.labels
    if rec.repo == "onnx/tensorflow-onnx":
        return not ({"question", "pending on user response"} & set(rec.labels))
    return True


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
