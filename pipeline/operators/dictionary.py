"""Operator dictionaries: which names are operators of which namespace.

The dictionaries are generated from well-kept sources into ``operators.json`` beside this
module (``mine operators build-dictionary``) and committed; the extractor only reads that file.

- ``onnx``: every operator of every domain and version that the installed ``onnx`` package
  knows (``onnx.defs.get_all_schemas_with_history()``; ``ai.onnx``, ``ai.onnx.ml``, preview and
  training domains, deprecated operators such as ``Upsample`` included).
- ``aten``: the ATen operators registered in the installed torch
  (``torch._C._jit_get_all_schemas()`` and the dispatcher's op names), overload and in-place
  suffix removed (``aten::add_.Tensor`` -> ``add``).
- ``tf``: the TensorFlow op types tf2onnx registers handlers for (``@tf_op(...)`` in its
  ``tf2onnx/onnx_opset`` and ``custom_opsets`` sources, read with :mod:`ast`), with the ONNX op a
  handler names (``onnx_op=``) as the op's family.
- ``paddle``: the Paddle op types Paddle2ONNX registers mappers for (``REGISTER_MAPPER(name, ...)``
  in its C++ sources).
- ``sklearn``: scikit-learn's estimator classes (``sklearn.utils.all_estimators()``).

Why a committed file and not a run-time computation: (1) the extractor's output must not depend
on which onnx or torch a machine happens to have (stored operators and the gold scores are
keyed by the extractor's version, which includes this file's digest); (2) extraction stays
cheap (importing torch takes seconds; the labelling page extracts per page); (3) the TF and
Paddle names come from converter sources that are not installed packages and cannot be fetched
offline. Operator names are facts, so committing them is fine. A test checks the file against
the installed onnx and torch.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

NAMESPACES = ("onnx", "aten", "tf", "paddle", "sklearn")
DATA_FILE = Path(__file__).with_name("operators.json")

# ATen names whose ONNX export is known to be one ONNX operator family (torch.onnx's symbolic
# functions emit that operator for them). Kept short and explicit: only mappings a maintainer
# would not dispute. The report can group by family; the extractor keeps the name as written.
ATEN_FAMILIES = {
    **{n: "Resize" for n in ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
                             "upsample_linear1d", "upsample_bilinear2d", "upsample_bicubic2d",
                             "upsample_trilinear3d", "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa",
                             "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
                             "_upsample_nearest_exact3d")},
    "grid_sampler": "GridSample", "grid_sampler_2d": "GridSample",
    "layer_norm": "LayerNormalization", "native_layer_norm": "LayerNormalization",
    "group_norm": "GroupNormalization", "instance_norm": "InstanceNormalization",
    "batch_norm": "BatchNormalization", "native_batch_norm": "BatchNormalization",
    "index_put": "ScatterND", "scatter": "ScatterElements", "gather": "GatherElements",
    "einsum": "Einsum", "cumsum": "CumSum", "topk": "TopK", "nonzero": "NonZero",
    "roll": "Slice", "triu": "Trilu", "tril": "Trilu", "matmul": "MatMul", "bmm": "MatMul",
    "conv2d": "Conv", "convolution": "Conv", "_convolution": "Conv", "conv_transpose2d": "ConvTranspose",
    "max_pool2d": "MaxPool", "avg_pool2d": "AveragePool", "adaptive_avg_pool2d": "GlobalAveragePool",
    "argmax": "ArgMax", "argmin": "ArgMin", "unique_dim": "Unique", "_unique2": "Unique",
    "stft": "STFT", "fft_rfft": "DFT", "fft_fft": "DFT", "col2im": "Col2Im",
    "scaled_dot_product_attention": "Attention", "lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN",
}


@dataclass(frozen=True)
class Dictionary:
    """Operator names per namespace, plus families and where the names came from."""

    names: dict[str, frozenset[str]]
    families: dict[str, dict[str, str]]
    sources: dict[str, str]
    digest: str

    def has(self, namespace: str, name: str) -> bool:
        return name in self.names.get(namespace, ())

    def family(self, namespace: str, name: str) -> str:
        """The ONNX operator family of an operator (ONNX operators are their own family; '' when unknown)."""
        if namespace == "onnx":
            return name
        return self.families.get(namespace, {}).get(name, "")


def key(name: str) -> str:
    """Spelling-insensitive key: ``GatherND``, ``gather_nd`` and ``gathernd`` share ``gathernd``."""
    return re.sub(r"[^0-9a-z]", "", name.lower())


@lru_cache(maxsize=4)
def load_dictionary(path: Path | str | None = None) -> Dictionary:
    """The committed dictionary (``operators.json``), parsed once per process."""
    p = Path(path) if path else DATA_FILE
    raw = p.read_bytes()
    data = json.loads(raw)
    names = {ns: frozenset(data["names"].get(ns, ())) for ns in NAMESPACES}
    return Dictionary(names, {ns: dict(v) for ns, v in data.get("families", {}).items()},
                      dict(data.get("sources", {})), hashlib.sha256(raw).hexdigest()[:12])


# ----------------------------------------------------------------------------- generation

def onnx_names() -> tuple[list[str], str]:
    """Every ONNX operator name of every domain and version, and the onnx version."""
    import onnx
    import onnx.defs

    return sorted({s.name for s in onnx.defs.get_all_schemas_with_history()}), onnx.__version__


def aten_base(name: str) -> str:
    """``aten::add_.Tensor`` -> ``add``; ``add`` stays; a leading underscore is kept (``_pack_padded_sequence``)."""
    base = name.split("::", 1)[-1].split(".", 1)[0]
    return base[:-1] if base.endswith("_") and not base.endswith("__") else base


def aten_names() -> tuple[list[str], str]:
    """ATen operator base names from the installed torch's registries, and the torch version."""
    import torch

    full = {s.name for s in torch._C._jit_get_all_schemas()} | set(torch._C._dispatch_get_all_op_names())
    names = {aten_base(n) for n in full if n.startswith("aten::")}
    return sorted(n for n in names if n and not n.startswith("__")), torch.__version__


def sklearn_names() -> tuple[list[str], str]:
    """scikit-learn's estimator class names, and its version."""
    import sklearn
    from sklearn.utils import all_estimators

    return sorted({name for name, _ in all_estimators()}), sklearn.__version__


# tf2onnx registers handlers for ONNX control-flow ops that its own rewriters emit; TensorFlow
# has no op of these names (its loops are While / StatelessWhile)
TF2ONNX_ONNX_LEVEL = {"Loop", "Scan"}


def tf2onnx_handlers(src: Path) -> dict[str, str]:
    """``{tf op type: onnx op or ''}`` from the ``@tf_op(...)`` decorators of a tf2onnx checkout
    (without :data:`TF2ONNX_ONNX_LEVEL`)."""
    out: dict[str, str] = {}
    files = sorted((src / "tf2onnx" / "onnx_opset").glob("*.py")) + sorted((src / "tf2onnx" / "custom_opsets").glob("*.py"))
    if not files:
        raise FileNotFoundError(f"{src}: no tf2onnx/onnx_opset/*.py (give a tf2onnx checkout)")
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            for dec in getattr(node, "decorator_list", []):
                if not (isinstance(dec, ast.Call) and getattr(dec.func, "id", "") == "tf_op" and dec.args):
                    continue
                first = dec.args[0]
                ops = [first] if isinstance(first, ast.Constant) else list(getattr(first, "elts", []))
                onnx_op = next((k.value.value for k in dec.keywords
                                if k.arg == "onnx_op" and isinstance(k.value, ast.Constant)), "")
                for op in ops:
                    if isinstance(op, ast.Constant) and isinstance(op.value, str) and op.value not in TF2ONNX_ONNX_LEVEL:
                        out.setdefault(op.value, onnx_op or "")
    return out


_P2O_REGISTER = re.compile(r"REGISTER_[A-Z_]*MAPPER\(\s*([a-z0-9_]+)\s*,")


def paddle2onnx_mappers(src: Path) -> list[str]:
    """Paddle op types with a mapper in a Paddle2ONNX checkout (``REGISTER_MAPPER(name, Class)``)."""
    names = set()
    files = list((src / "paddle2onnx").rglob("*.cc")) + list((src / "paddle2onnx").rglob("*.h"))
    if not files:
        raise FileNotFoundError(f"{src}: no paddle2onnx/**/*.cc (give a Paddle2ONNX checkout)")
    for f in files:
        names.update(_P2O_REGISTER.findall(f.read_text(encoding="utf-8", errors="replace")))
    return sorted(names)


def build_dictionary(tf2onnx_src: Path | None = None, paddle2onnx_src: Path | None = None,
                     previous: Path | None = DATA_FILE) -> dict:
    """The dictionary as JSON data, from the installed packages and (optionally) converter checkouts.

    A namespace whose source is not given keeps the names (and source note) of ``previous``.
    """
    old = json.loads(Path(previous).read_text(encoding="utf-8")) if previous and Path(previous).is_file() else {}
    names: dict[str, list[str]] = {}
    families: dict[str, dict[str, str]] = {}
    sources: dict[str, str] = {}
    names["onnx"], v = onnx_names()
    sources["onnx"] = f"onnx {v}: onnx.defs.get_all_schemas_with_history()"
    names["aten"], v = aten_names()
    sources["aten"] = f"torch {v}: torch._C._jit_get_all_schemas() + _dispatch_get_all_op_names()"
    families["aten"] = {n: f for n, f in sorted(ATEN_FAMILIES.items()) if n in set(names["aten"])}
    names["sklearn"], v = sklearn_names()
    sources["sklearn"] = f"scikit-learn {v}: sklearn.utils.all_estimators()"
    if tf2onnx_src is not None:
        handlers = tf2onnx_handlers(Path(tf2onnx_src))
        names["tf"] = sorted(handlers)
        families["tf"] = {k: v for k, v in sorted(handlers.items()) if v}
        sources["tf"] = f"tf2onnx handler registrations (@tf_op) of {_describe(Path(tf2onnx_src))}"
    else:
        names["tf"], families["tf"] = old.get("names", {}).get("tf", []), old.get("families", {}).get("tf", {})
        sources["tf"] = old.get("sources", {}).get("tf", "")
    if paddle2onnx_src is not None:
        names["paddle"] = paddle2onnx_mappers(Path(paddle2onnx_src))
        sources["paddle"] = f"Paddle2ONNX mapper registrations (REGISTER_MAPPER) of {_describe(Path(paddle2onnx_src))}"
    else:
        names["paddle"] = old.get("names", {}).get("paddle", [])
        sources["paddle"] = old.get("sources", {}).get("paddle", "")
    return {"sources": sources, "names": {ns: names[ns] for ns in NAMESPACES}, "families": families}


def _describe(src: Path) -> str:
    rev = src / "REVISION"
    return f"{src.name} at {rev.read_text().strip()}" if rev.is_file() else src.name


def write_dictionary(data: dict, path: Path | str = DATA_FILE) -> Path:
    """Write the dictionary JSON (one name per line, so diffs show added operators)."""
    p = Path(path)
    p.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    load_dictionary.cache_clear()
    return p
