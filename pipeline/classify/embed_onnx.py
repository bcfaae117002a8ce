"""ONNX Runtime backend of :class:`pipeline.classify.embed.Embedder`.

The model folder's transformer is exported once, by this project, with ``torch.onnx.export``
(the torch.export-based exporter, which needs ``onnxscript``) into
``$MINE_CACHE_DIR/onnx/<model id>/`` (default ``~/.cache/mine``); nothing is downloaded. The
graph outputs token embeddings; pooling and normalisation follow the folder's ``modules.json``
and its pooling config, in numpy, exactly as sentence-transformers computes them. Tokenization
is the folder's own ``tokenizer.json``, truncated at the folder's ``max_seq_length``.

An export is checked against PyTorch on probe texts before it is kept (cosine >= 0.9999), written
to a temporary file and renamed into place (a killed export leaves no half file), under a lock
file (two processes never export at once; the second finds the first one's file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CACHE_ENV = "MINE_CACHE_DIR"
EXPORT_VERSION = 2  # bump when the exported graph changes: the file name carries it, so old exports are ignored
ONNX_FILE = f"model-v{EXPORT_VERSION}.onnx"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
# Opset 23 has an Attention operator: the model's scaled-dot-product attention is exported as one
# node that ONNX Runtime runs fused, instead of MatMul/Softmax/Where chains (opset 18): 30% more
# full texts per second, measured interleaved on the same texts (11.5 vs 15.0 texts/s).
OPSET = 23
MIN_PROBE_COSINE = 0.9999
# Probe texts of the export check: padded and unpadded batches, long (truncated), non-ASCII, empty.
PROBE_TEXTS = (
    "RuntimeError: ONNX export failed: Couldn't export operator aten::unfold",
    "tf2onnx hangs while optimizing the graph " * 60,
    "Konvertierung schlägt fehl: 形状不匹配 🚀",
    "",
)
SUPPORTED_POOLING = ("mean_tokens", "cls_token", "max_tokens", "mean_sqrt_len_tokens")


class OnnxUnavailable(Exception):
    """The ONNX backend cannot serve this model folder (the message says why)."""


def cache_dir() -> Path:
    """The project's cache folder: ``$MINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/mine``, else ``~/.cache/mine``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "mine"


def export_path(model_id: str) -> Path:
    """Where the ONNX export of the model with id ``model_id`` lives (it may not exist yet)."""
    safe = "".join(c if c.isalnum() or c in "@.-_" else "_" for c in model_id)
    return cache_dir() / "onnx" / safe / ONNX_FILE


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class PipelineSpec:
    """What a sentence-transformers folder does after its transformer, read from its own files."""

    max_seq_length: int
    pooling: str  # one of SUPPORTED_POOLING
    normalize: bool


def read_pipeline(model_path: Path | str) -> PipelineSpec:
    """The folder's module chain (``modules.json``): Transformer, Pooling, optionally Normalize.

    :class:`OnnxUnavailable` for any other chain (a Dense layer, weighted or last-token pooling,
    several pooling modes at once): those run on PyTorch.
    """
    p = Path(model_path)
    try:
        modules = json.loads((p / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OnnxUnavailable(f"{p / 'modules.json'}: cannot read the module list ({e})") from None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise OnnxUnavailable(f"{p / 'modules.json'}: modules {kinds} (only Transformer, Pooling[, Normalize] run on ONNX)")
    pool_dir = p / (modules[1].get("path") or "1_Pooling")
    try:
        pool_cfg = json.loads((pool_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise OnnxUnavailable(f"{pool_dir / 'config.json'}: cannot read the pooling config ({e})") from None
    modes = [k.removeprefix("pooling_mode_") for k, v in pool_cfg.items() if k.startswith("pooling_mode_") and v is True]
    if isinstance(pool_cfg.get("pooling_mode"), str):  # newer sentence-transformers write the mode by name
        modes = [{"mean": "mean_tokens", "cls": "cls_token", "max": "max_tokens",
                  "mean_sqrt_len_tokens": "mean_sqrt_len_tokens"}.get(pool_cfg["pooling_mode"], pool_cfg["pooling_mode"])]
    if len(modes) != 1 or modes[0] not in SUPPORTED_POOLING:
        raise OnnxUnavailable(f"{pool_dir / 'config.json'}: pooling {modes or 'none'} is not supported on ONNX")
    max_len = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        max_len = json.loads((p / "sentence_bert_config.json").read_text(encoding="utf-8")).get("max_seq_length")
    with contextlib.suppress(OSError, ValueError, AttributeError):
        # sentence-transformers caps the limit at the position table, as we must
        positions = json.loads((p / "config.json").read_text(encoding="utf-8")).get("max_position_embeddings")
        if positions and (not max_len or int(max_len) > int(positions)):
            max_len = int(positions)
    if not max_len:
        raise OnnxUnavailable(f"{p}: no max_seq_length in sentence_bert_config.json")
    return PipelineSpec(int(max_len), modes[0], kinds[-1] == "Normalize")


def load_tokenizer(model_path: Path | str, max_length: int):
    """The folder's fast tokenizer (``tokenizer.json``), truncating at ``max_length``, without padding
    (batches are padded to their own longest text)."""
    from tokenizers import Tokenizer

    f = Path(model_path) / "tokenizer.json"
    if not f.is_file():
        raise OnnxUnavailable(f"{f}: no fast tokenizer file")
    tok = Tokenizer.from_file(str(f))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)  # the file ships with 128: the model reads 256
    return tok


def pool(token_embeddings: np.ndarray, mask: np.ndarray, spec: PipelineSpec) -> np.ndarray:
    """Sentence vectors from ``(batch, seq, dim)`` token embeddings, as sentence-transformers' Pooling
    and Normalize modules compute them (float32 throughout)."""
    m = mask[..., None].astype(np.float32)
    if spec.pooling == "cls_token":
        out = token_embeddings[:, 0]
    elif spec.pooling == "max_tokens":
        out = np.where(m > 0, token_embeddings, np.float32(-1e9)).max(axis=1)
    else:
        summed = (token_embeddings * m).sum(axis=1)
        counts = np.clip(m.sum(axis=1), 1e-9, None)
        out = summed / (np.sqrt(counts) if spec.pooling == "mean_sqrt_len_tokens" else counts)
    out = out.astype(np.float32)
    if spec.normalize:
        out = out / np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
    return out


def length_buckets(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length (sorted by length, stable), so each batch pads
    only to its own longest text."""
    order = np.argsort(np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), max(1, batch_size))]


def _feeds(encodings, input_names: Sequence[str]) -> dict[str, np.ndarray]:
    n = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), n), dtype=np.int64)
    mask = np.zeros_like(ids)
    types = np.zeros_like(ids)
    for i, e in enumerate(encodings):
        k = len(e.ids)
        ids[i, :k] = e.ids
        mask[i, :k] = e.attention_mask
        types[i, :k] = e.type_ids
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {k: feeds[k] for k in input_names}


def _session(onnx_file: Path, threads: int | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    # one inference at a time, spread over the cores; more threads than cores only contend
    so.intra_op_num_threads = threads or cpu_count()
    so.inter_op_num_threads = 1
    # idle pool threads sleep instead of spinning: the cores are shared (other workers, the crawl,
    # the store); measured 20% faster on full texts on a 2-core machine at load 4 (spinning on: 10.8/s, off: 13.0/s)
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(onnx_file), so, providers=["CPUExecutionProvider"])


class OnnxEncoder:
    """Embeds texts with ONNX Runtime from the export of one model folder (made on first use)."""

    name = "onnx"

    def __init__(self, model_path: Path | str, model_id: str, *, onnx_file: Path | str | None = None,
                 threads: int | None = None, log: Callable[[str], None] | None = None):
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            raise OnnxUnavailable(f"onnxruntime cannot be imported ({e})") from None
        self.path = Path(model_path)
        self.spec = read_pipeline(self.path)
        self.tokenizer = load_tokenizer(self.path, self.spec.max_seq_length)
        self.onnx_file = Path(onnx_file) if onnx_file else ensure_export(self.path, model_id, log=log)[0]
        try:
            self.session = _session(self.onnx_file, threads)
        except Exception as e:  # noqa: BLE001 -- a runtime too old for the opset, a damaged file: PyTorch then
            raise OnnxUnavailable(f"{self.onnx_file}: ONNX Runtime cannot load it ({type(e).__name__}: {e})") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.threads = threads or cpu_count()

    def tokenize(self, texts: Sequence[str]):
        """The folder tokenizer's encodings of ``texts`` (special tokens added, truncated)."""
        return self.tokenizer.encode_batch([str(t) for t in texts])

    def encode(self, texts: Sequence[str], batch_size: int, on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Rows of sentence vectors for ``texts``, in input order; ``on_batch(n)`` after each batch."""
        encodings = self.tokenize(texts)
        out = np.zeros((len(texts), 0), dtype=np.float32)
        for idx in length_buckets([len(e.ids) for e in encodings], batch_size):
            feeds = _feeds([encodings[i] for i in idx], self.input_names)
            tokens = self.session.run(None, feeds)[0]
            vecs = pool(tokens, feeds["attention_mask"], self.spec)
            if out.shape[1] == 0:
                out = np.zeros((len(texts), vecs.shape[1]), dtype=np.float32)
            out[idx] = vecs
            if on_batch is not None:
                on_batch(len(idx))
        return out


@lru_cache(maxsize=2)
def onnx_encoder(model_path: str, model_id: str) -> OnnxEncoder:
    """One :class:`OnnxEncoder` per model per process (a session holds the weights in memory)."""
    return OnnxEncoder(model_path, model_id)


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_export(model_path: Path | str, model_id: str, *, log: Callable[[str], None] | None = None) -> tuple[Path, bool]:
    """``(path of the ONNX export of model_path, whether it was made by this call)``.

    Made at most once per model id and cache folder: under an exclusive lock on
    ``<folder>/.lock``, a process that finds the file uses it; else it removes what a killed export
    left (temporary files), exports to a temporary file, checks it and renames it into place.
    :class:`OnnxUnavailable` when the export or its check fails.
    """
    target = export_path(model_id)
    if target.is_file():
        return target, False
    log = log or _say
    with _locked(target.parent):
        if target.is_file():  # another process exported it while we waited
            return target, False
        for stale in target.parent.glob(".*.tmp*"):
            with contextlib.suppress(OSError):
                stale.unlink()
        tmp = target.parent / f".{target.name}.tmp{os.getpid()}"
        log(f"embedding: exporting {model_id} to ONNX once, into {target.parent} ...")
        t0 = time.perf_counter()
        try:
            cosine = export_onnx(Path(model_path), tmp)
            os.replace(tmp, target)
        except OnnxUnavailable:
            raise
        except Exception as e:  # noqa: BLE001 -- the exporter's failures are many and undocumented: any of them means "use PyTorch"
            raise OnnxUnavailable(f"ONNX export of {model_path} failed ({type(e).__name__}: {e})") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        log(f"embedding: ONNX export done in {time.perf_counter() - t0:.1f} s (probe cosine to PyTorch {cosine:.6f})")
    return target, True


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder/.lock`` (created with the folder), held for the block."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fh = (folder / ".lock").open("a+")
    except OSError as e:
        raise OnnxUnavailable(f"{folder}: cannot write the ONNX cache ({e}); set {CACHE_ENV}") from None
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released by the kernel if this process dies
        yield


def _token_embedding_module(auto_model):
    """The transformer of a sentence-transformers model with token embeddings as its one output."""
    import torch

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    return TokenEmbeddings(auto_model).eval()


def export_onnx(model_path: Path, out: Path) -> float:
    """Export the folder's transformer to ``out`` (one self-contained file, fsynced) and check it
    against PyTorch on :data:`PROBE_TEXTS`; returns the smallest probe cosine.

    The example batch holds texts of two lengths: traced with an all-ones attention mask, the
    transformer's mask handling is specialised away and padded batches come out wrong.
    """
    import torch

    from pipeline.classify.embed import _load_model

    spec = read_pipeline(model_path)
    st = _load_model(str(model_path))
    auto_model = st[0].auto_model
    wrapper = _token_embedding_module(auto_model)
    tok = load_tokenizer(model_path, spec.max_seq_length)
    example = _feeds(tok.encode_batch(["a short text", "a longer text of several more word pieces than the first"]),
                     INPUT_NAMES)
    args = tuple(torch.from_numpy(example[k]) for k in INPUT_NAMES)
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("sequence", min=1, max=spec.max_seq_length)
    with torch.no_grad(), contextlib.redirect_stdout(sys.stderr), _quiet_export():
        program = torch.onnx.export(wrapper, args, None, input_names=list(INPUT_NAMES), output_names=["token_embeddings"],
                                    dynamic_shapes={k: {0: batch, 1: seq} for k in INPUT_NAMES}, dynamo=True,
                                    external_data=False, verbose=False, optimize=True, opset_version=OPSET)
    program.save(str(out), external_data=False)
    with open(out, "rb+") as fh:
        os.fsync(fh.fileno())
    cosine = _probe_cosine(out, st, spec, tok)
    if not cosine >= MIN_PROBE_COSINE:
        raise OnnxUnavailable(f"ONNX export of {model_path} differs from PyTorch (probe cosine {cosine:.6f} < {MIN_PROBE_COSINE})")
    return cosine


@contextlib.contextmanager
def _quiet_export():
    """Silence the exporter's progress lines and warnings (torchvision missing, deprecations): they
    are not the user's business; a failure still raises."""
    import logging
    import warnings

    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def _probe_cosine(onnx_file: Path, st, spec: PipelineSpec, tok) -> float:
    session = _session(onnx_file)
    names = [i.name for i in session.get_inputs()]
    ref = st.encode(list(PROBE_TEXTS), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    worst = 1.0
    # the whole probe set as one padded batch, then each text alone (no padding at all)
    for group in (list(range(len(PROBE_TEXTS))), *([i] for i in range(len(PROBE_TEXTS)))):
        feeds = _feeds(tok.encode_batch([PROBE_TEXTS[i] for i in group]), names)
        vecs = pool(session.run(None, feeds)[0], feeds["attention_mask"], spec)
        vecs = vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
        worst = min(worst, float(np.min(np.sum(vecs * ref[group], axis=1))))
    return worst
