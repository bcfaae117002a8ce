"""Which operators an issue names: a pure function over its title, body and comments.

:func:`extract_operators` returns the set of :class:`Operator` (namespace + canonical name) an
issue's text names, found three ways, strongest first:

1. **The converters' own messages**, whose wording fixes the namespace (read from each
   converter's sources): torch.onnx's ``Exporting the operator 'aten::X' to ONNX opset version N
   is not supported`` and ``ONNX export failed on ATen operator X``; tf2onnx's ``Unsupported ops:
   Counter({'X': 1})``, ``Tensorflow op [name: X] is not supported`` and its node summaries
   (``OP=X``); Paddle2ONNX's ``Oops, there are some operators not supported yet, including x,y,``
   (and its older ``There's N ops are not supported yet`` + ``=== x ===`` lines, ``[Paddle2ONNX]
   [x: out]`` prefixes, ``Due to the operator: x``); sklearn-onnx's ``Unable to find a shape
   calculator for type '<class 'm.X'>'``; onnx2torch's ``operation_type='X'``; onnx-tensorflow's
   ``X version N is not implemented``; onnxruntime / onnx checker / TensorRT lines naming a node's
   op type (``Optype (Mul)``, ``op_type: "Constant"``, ``No Op registered for X``).
2. **Explicit names and handler modules**: ``aten::X`` / ``onnx::X`` anywhere but in printed IR
   graphs; traceback frames and links into converter handler modules (``torch/onnx/
   symbolic_opset9.py ... in upsample_bilinear2d``, ``onnx2torch/node_converters/scatter_nd.py``,
   ``onnx_tf/handlers/backend/resize.py``, ``paddle2onnx/mapper/.../roll.cc``); ``torch.X`` /
   ``F.X`` / ``torch.linalg.X`` named in prose (``torch.triu`` -> ``aten:triu``), and ``tf.X`` /
   ``tf.nn.X`` / ``tf.raw_ops.X`` (``tf.nn.depth_to_space`` -> ``tf:DepthToSpace``).
3. **Dictionary names** (:mod:`pipeline.operators.dictionary`) in the title, prose, inline code
   and error lines, never in the rest of a code block (repro code uses many operators it is not
   about). Which namespaces are looked up depends on the converter (``repo``): a torch.onnx issue
   names ATen and ONNX operators, a tf2onnx issue TF and ONNX ones (a name in both, ``Cast``, is
   the TF op), and so on (:data:`REPO_NAMESPACES`).

Spelling variants, explicitly: a name matches its dictionary entry exactly; the
spelling-insensitive key (:func:`pipeline.operators.dictionary.key`: ``gather_nd`` ->
``GatherND``, ``depth_to_space`` -> ``DepthToSpace``) is used only for snake_case or lower-case
words in operator context; ATen names lose overload and in-place suffix (``aten::add_.Tensor`` ->
``add``); sklearn estimators written as words (``Isolation Forest``) are joined. Names that are
also ordinary words (``Size``, ``Shape``, ``If``, ``Loop``, ``Range``, ``Mod``, ``And``, ``Add``,
``Cast``: every dictionary name that is one capitalised word or one lower-case word) count only
in operator context: an inline code span holding just the name, an error line where the name is
quoted or bracketed, or an operator word (op, operator, operation, node, layer) within two words.
Names after a dot (``nn.LSTM``, ``layers.GRU``) are Python attributes, not operators.
The ATen -> ONNX family of a name (``aten:upsample_bilinear2d`` -> ``Resize``) is
:meth:`Dictionary.family`; extraction keeps the name as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from pipeline.operators.dictionary import Dictionary, aten_base, key, load_dictionary

# Bump when a rule changes: stored operators are recomputed when this (or the dictionary) changes.
RULES_VERSION = "1"


@dataclass(frozen=True, order=True)
class Operator:
    """One operator: ``namespace`` (onnx, aten, tf, paddle, sklearn) and its canonical ``name``."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}:{self.name}"

    @classmethod
    def parse(cls, text: str) -> "Operator":
        """``"onnx:Resize"`` -> ``Operator("onnx", "Resize")``."""
        ns, sep, name = text.strip().partition(":")
        if not sep or not ns or not name:
            raise ValueError(f"{text!r}: expected namespace:Name")
        return cls(ns, name)


def extractor_version(dictionary: Dictionary | None = None) -> str:
    """``"<rules>-<dictionary digest>"``: changes whenever extraction could give other results."""
    return f"{RULES_VERSION}-{(dictionary or load_dictionary()).digest}"


# Which namespaces plain names are looked up in, per converter repository, in order of preference.
REPO_NAMESPACES = {
    "pytorch/pytorch": ("aten", "onnx"),
    "onnx/tensorflow-onnx": ("tf", "onnx"),
    "onnx/onnx-tensorflow": ("onnx", "tf"),
    "ENOT-AutoDL/onnx2torch": ("onnx", "aten"),
    "PaddlePaddle/Paddle2ONNX": ("paddle", "onnx"),
    "onnx/sklearn-onnx": ("sklearn", "onnx"),
}
ALL_NAMESPACES = ("onnx", "aten", "tf", "paddle", "sklearn")

_OP_WORDS = {"op", "ops", "operator", "operators", "operation", "operations", "node", "nodes", "layer", "layers"}
_SKLEARN_WORDS = {"estimator", "estimators", "model", "models", "converter", "converters", "transformer",
                  "sklearn", "scikit", "classifier", "regressor", "pipeline"}
# English words that are also operator names and sit next to "operator" in ordinary sentences
# ("operators not supported", "nodes and edges"): never taken as operators when lower-case
_FUNCTION_WORDS = {"and", "or", "not", "if", "where", "to", "get", "all", "any", "the", "is", "are", "for", "in",
                   "of", "with", "this", "that", "these", "some", "new", "each", "every", "custom", "same", "equal",
                   "identity", "constant", "optional", "size", "shape", "range", "loop", "mod", "unique",
                   "tensor", "output", "input", "one", "two", "second", "first", "last", "other", "following",
                   "device", "dtype", "layout", "requires_grad"}
# torch functions that build inputs or run the export, never the subject of an issue
_TORCH_STOP = {"randn", "rand", "randint", "zeros", "ones", "tensor", "empty", "full", "zeros_like", "ones_like",
               "from_numpy", "manual_seed", "load", "save", "to", "export", "no_grad", "device"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE = re.compile(r"`([^`\n]+)`")
_URL = re.compile(r"https?://\S+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IR_LINE = re.compile(r"^\s*(%[\w.:]+\s*(:|=)|return\s*\(|graph\s*\()|graph\(%")
_SINGLE_WORD = re.compile(r"[A-Z]?[a-z]+")

# --- the converters' messages: (regex, namespace); group "name" or "names" (a list)
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_REST = r"[A-Za-z0-9_]*"
_MESSAGES: list[tuple[re.Pattern, str]] = [
    # torch.onnx
    (re.compile(rf"Exporting the operator [`'\"]?(?:(?P<prefix>aten|onnx|prim)::)?(?P<name>{_NAME})[`'\"]? to ONNX"), "aten"),
    (re.compile(rf"ONNX export failed on (?:ATen )?operator [`'\"]?(?:aten::)?(?P<name>{_NAME})"), "aten"),
    (re.compile(rf"symbolic_opset\d+\.(?P<name>{_NAME}) does not exist"), "aten"),
    (re.compile(rf"[Uu]nsupported: ONNX export of (?:operator )?[`'\"]?(?:aten::)?(?P<name>{_NAME})"), "aten|onnx"),
    (re.compile(rf"Couldn't export operator (?:aten::)?(?P<name>{_NAME})"), "aten"),
    # tf2onnx
    (re.compile(r"Unsupported ops: Counter\(\{(?P<names>[^}]*)\}\)"), "tf"),
    (re.compile(rf"[Tt]ensorflow op \[[^\]\n]*?:\s*(?P<name>{_NAME})\] is not supported"), "tf"),
    (re.compile(rf"[Tt]ensorflow op [`'\"]?(?P<name>[A-Z]{_REST})[`'\"]? is not supported"), "tf"),
    (re.compile(rf"\bOP=(?P<name>{_NAME})"), "tf"),
    (re.compile(rf"\[[^\[\],\n]+, type: (?P<name>{_NAME})\]"), "onnx"),
    # onnx2torch, onnx-tensorflow, onnxruntime, the onnx checker, TensorRT
    (re.compile(rf"operation_type='(?P<name>{_NAME})'"), "onnx"),
    (re.compile(rf"\bop_type:\s*['\"]?(?P<name>{_NAME})"), "onnx"),
    (re.compile(rf"\bOp(?:type)? \((?P<name>{_NAME})\)"), "onnx"),
    (re.compile(rf"No Op registered for (?P<name>{_NAME})"), "onnx"),
    (re.compile(rf"Could not find an implementation for (?P<name>{_NAME})\(\d+\)"), "onnx"),
    (re.compile(rf"No importer registered for op: (?P<name>{_NAME})"), "onnx"),
    (re.compile(rf"(?P<name>[A-Z]{_REST})(?: version \d+)? is not implemented"), "onnx|tf"),
    # Paddle2ONNX
    (re.compile(r"(?:operators?|ops) (?:are |is )?not supported yet,? including:?\s*(?P<names>[\w, ]+)"), "paddle"),
    (re.compile(rf"\[(?:ERROR\]\[)?Paddle2ONNX\] \[(?P<name>[a-z]{_REST}):"), "paddle"),
    (re.compile(rf"Due to the operator: (?P<name>{_NAME})"), "paddle"),
    (re.compile(rf"for operator '(?P<name>[a-z]{_REST})'"), "paddle"),
    (re.compile(rf"(?P<name>[a-z]{_REST}) is exported as custom operator"), "paddle"),
    # sklearn-onnx
    (re.compile(r"Unable to find a (?:shape calculator|converter|parser) for (?:alias '\w+' and )?(?:model )?"
                r"type:? ?['\"]?<class '(?P<cls>[\w.]+)'>"), "sklearn"),
]
_PADDLE_OLD_HEAD = re.compile(r"ops are not supported yet")
_PADDLE_OLD_LINE = re.compile(r"^\s*=+ ([a-z][a-z0-9_]*) =+\s*$")
_EXPLICIT = re.compile(r"\b(aten|onnx)::([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_]\w*)?)")
_HANDLER_PATHS: list[tuple[re.Pattern, str]] = [
    (re.compile(r"torch/onnx/symbolic_opset\d+\.py\"?, line \d+, in ([a-z][a-z0-9_]*)"), "aten"),
    (re.compile(r"onnx2torch/node_converters/([a-z][a-z0-9_]*)\.py"), "onnx"),
    (re.compile(r"onnx_tf/handlers/backend/([a-z][a-z0-9_]*)\.py"), "onnx"),
    (re.compile(r"onnx_tf/handlers/frontend/([a-z][a-z0-9_]*)\.py"), "tf"),
    (re.compile(r"paddle2onnx/mapper/(?:\w+/)*([a-z][a-z0-9_]*)\.(?:cc|h|py)"), "paddle"),
]
_TF_API = re.compile(r"(?<![\w.])tf\.(?:compat\.v1\.)?(?:nn\.|math\.|image\.|linalg\.|signal\.|strings\.|raw_ops\.)?([A-Za-z_]\w*)\b")
_TORCH_API = re.compile(r"(?<![\w.])(?:torch\.(?:nn\.functional\.|Tensor\.)?|F\.|Tensor\.)(linalg\.|fft\.|special\.)?([a-z_][a-z0-9_]*)\b")


@dataclass
class _Text:
    """An issue's text cut into the parts the rules treat differently."""

    prose: list[str]          # title and prose lines (inline code and URLs removed)
    inline: list[str]         # inline code spans
    code: list[str]           # lines of code blocks
    errors: list[str]         # error lines (of prose and code)
    raw: list[str]            # every line, as written


def _split(title: str, parts: Iterable[str]) -> _Text:
    from pipeline.classify.text import error_lines

    prose, inline, code, raw = [title], [s.strip() for s in _INLINE.findall(title)], [], [title]
    for part in parts:
        in_fence = False
        for line in (part or "").replace("\r\n", "\n").split("\n"):
            raw.append(line)
            if _FENCE.match(line):
                in_fence = not in_fence
                continue
            if in_fence:
                code.append(line)
                continue
            inline.extend(s.strip() for s in _INLINE.findall(line))
            prose.append(_URL.sub(" ", line))
    errors = error_lines([c for c in code if not _IR_LINE.match(c)], "\n".join(prose))
    return _Text(prose, inline, code, errors, raw)


class _Resolver:
    """Dictionary lookups of one issue (its converter decides the namespaces)."""

    def __init__(self, d: Dictionary, repo: str | None):
        self.d = d
        self.namespaces = REPO_NAMESPACES.get(repo or "", ALL_NAMESPACES)
        self.keys = {ns: {} for ns in ALL_NAMESPACES}
        for ns in ALL_NAMESPACES:
            for n in sorted(d.names[ns]):
                self.keys[ns].setdefault(key(n), n)

    def exact(self, name: str, namespaces: Iterable[str] | None = None) -> Operator | None:
        for ns in namespaces or self.namespaces:
            if ns == "aten":
                base = aten_base(name)
                if self.d.has("aten", base):
                    return Operator("aten", base)
            elif self.d.has(ns, name):
                return Operator(ns, name)
        return None

    def by_key(self, name: str, namespaces: Iterable[str] | None = None) -> Operator | None:
        k = key(name)
        for ns in namespaces or self.namespaces:
            if ns == "aten":
                continue  # ATen names are matched as written: their keys collide with English words
            if k in self.keys[ns]:
                return Operator(ns, self.keys[ns][k])
        return self.exact(name, namespaces)


def _ambiguous(name: str) -> bool:
    """A name that is also an ordinary word: one capitalised or lower-case word, no digit or underscore."""
    return bool(_SINGLE_WORD.fullmatch(name))


def _message_operators(text: _Text, r: _Resolver) -> set[Operator]:
    out: set[Operator] = set()
    for line in text.raw:
        for rx, ns in _MESSAGES:
            for m in rx.finditer(line):
                groups = m.groupdict()
                if groups.get("names") is not None:
                    names = re.findall(r"'([^']+)'", groups["names"]) if ns == "tf" else \
                        [n for n in re.split(r"[,\s]+", groups["names"]) if n]
                    out.update(Operator(ns, n) for n in names if re.fullmatch(_NAME, n))
                elif groups.get("cls"):
                    module, _, cls = groups["cls"].rpartition(".")
                    if not module.startswith("__main__"):  # a user's own class is not an operator
                        out.add(Operator("sklearn", cls))
                else:
                    name = groups["name"]
                    if groups.get("prefix") == "onnx":
                        op = r.exact(name, ("onnx",))
                    elif groups.get("prefix") == "prim":
                        op = None
                    elif "|" in ns:
                        op = r.exact(name, tuple(ns.split("|")))
                    elif ns == "aten":
                        op = Operator("aten", aten_base(name))
                    elif ns == "onnx":
                        op = r.exact(name, ("onnx",))
                    else:
                        op = Operator(ns, name)
                    if op:
                        out.add(op)
    joined = "\n".join(text.raw)
    if _PADDLE_OLD_HEAD.search(joined):
        out.update(Operator("paddle", m.group(1)) for line in text.raw if (m := _PADDLE_OLD_LINE.match(line)))
    return out


def _explicit_operators(text: _Text, r: _Resolver) -> set[Operator]:
    out: set[Operator] = set()
    for line in text.raw:
        for rx, ns in _HANDLER_PATHS:
            for name in rx.findall(line):
                op = r.exact(name, (ns,)) if ns in ("aten", "paddle") else r.by_key(name, (ns,))
                if op:
                    out.add(op)
        if _IR_LINE.match(line):
            continue  # a printed graph names every node; the issue is rarely about all of them
        for ns, name in _EXPLICIT.findall(line):
            op = Operator("aten", aten_base(name)) if ns == "aten" else r.exact(name.split(".")[0], ("onnx",))
            if op and (ns != "aten" or r.d.has("aten", op.name)):
                out.add(op)
    for line in [*text.prose, *text.inline, *text.errors]:
        if _IR_LINE.search(line):
            continue
        for sub, name in _TORCH_API.findall(line):
            full = f"{sub[:-1]}_{name}" if sub else name
            if name not in _TORCH_STOP and r.d.has("aten", aten_base(full)):
                out.add(Operator("aten", aten_base(full)))
        for name in _TF_API.findall(line):  # tf.nn.depth_to_space -> DepthToSpace
            op = r.by_key(name, ("tf",))
            if op:
                out.add(op)
    return out


def _near_op_word(words: list[str], i: int, vocabulary: set[str], span: int = 2) -> bool:
    return any(w.lower() in vocabulary for w in words[max(0, i - span):i] + words[i + 1:i + 1 + span])


def _word_operators(line: str, r: _Resolver, *, error_line: bool = False) -> set[Operator]:
    """Dictionary names in one line of prose (or an error line)."""
    out: set[Operator] = set()
    if line.startswith(("    ", "\t")):
        return out  # an indented code block (Markdown), not prose
    matches = list(_WORD.finditer(line))
    words = [m.group() for m in matches]
    for i, m in enumerate(matches):
        w = m.group()
        before = line[m.start() - 1] if m.start() else ""
        after = line[m.end()] if m.end() < len(line) else ""
        if before == "." or (after == "." and m.end() + 1 < len(line) and line[m.end() + 1].isalpha()):
            continue  # nn.LSTM, layers.GRU, resize.py: Python attributes and file names
        if len(w) < 2 or w.isdigit():
            continue
        quoted = bool(before) and before in "'\"`" and bool(after) and after in "'\"`"
        if w[0].isupper():
            op = r.exact(w)
            if op is None:
                continue
            if _ambiguous(w):
                bracketed = error_line and bool(before) and bool(after) and before in "'\"`([" and after in "'\"`)]"
                context = _SKLEARN_WORDS | _OP_WORDS if op.namespace == "sklearn" else _OP_WORDS
                backticked = before == "`" and after == "`"
                if not (_near_op_word(words, i, context) or bracketed or backticked):
                    continue
            out.add(op)
            continue
        adjacent = _near_op_word(words, i, _OP_WORDS, span=1)
        if w.lower() in _FUNCTION_WORDS:
            op = None
        elif "_" in w.strip("_") or any(c.isdigit() for c in w):
            op = r.exact(w) or r.exact("_" + w, ("aten",)) or (r.by_key(w) if adjacent or quoted else None)
        elif adjacent or (error_line and quoted):
            op = r.by_key(w)
        elif r.namespaces[0] == "sklearn" and _near_op_word(words, i, _SKLEARN_WORDS):
            op = r.by_key(w, ("sklearn",))
        else:
            op = None
        if op is not None:
            out.add(op)
    # estimators written as words: "Isolation Forest" -> IsolationForest
    if "sklearn" in r.namespaces:
        for m in re.finditer(r"\b([A-Z][a-z]+(?: [A-Z][a-z]+){1,3})\b", line):
            joined = m.group(1).replace(" ", "")
            if r.d.has("sklearn", joined):
                out.add(Operator("sklearn", joined))
    return out


def _inline_operators(span: str, r: _Resolver) -> set[Operator]:
    """An inline code span naming an operator: just the name, or the name called (``Resize(...)``)."""
    m = re.fullmatch(rf"(?:[\w.]+\.)?({_NAME})(?:\(.*\))?", span.strip())
    if not m or "." in span.split("(")[0]:
        return set()
    name = m.group(1)
    op = r.exact(name) or (r.by_key(name) if not name[0].isupper() else None)
    return {op} if op else set()


def extract_operators(title: str, body: str | None = None, comments: Iterable[str] = (),
                      repo: str | None = None, *, dictionary: Dictionary | None = None) -> list[Operator]:
    """The operators an issue names, sorted (namespace, name), each once.

    ``repo`` (``owner/name``) says which converter the issue belongs to, hence which namespaces
    plain names are looked up in (every namespace when ``None`` or unknown).

    >>> [str(o) for o in extract_operators("Exporting the operator 'aten::im2col' to ONNX opset version 11 is not supported")]
    ['aten:im2col']
    >>> [str(o) for o in extract_operators("Resize op uses wrong mode", repo="onnx/tensorflow-onnx")]
    ['onnx:Resize']
    >>> extract_operators("Size of the exported model is wrong", repo="pytorch/pytorch")
    []
    """
    r = _Resolver(dictionary or load_dictionary(), repo)
    text = _split(title or "", [body or "", *comments])
    found = _message_operators(text, r) | _explicit_operators(text, r)
    words: set[Operator] = set()
    errors = set(text.errors)
    for line in text.prose:
        words |= _word_operators(line, r, error_line=" ".join(line.split()) in errors)
    for line in text.errors:
        if not _IR_LINE.search(line):
            words |= _word_operators(line, r, error_line=True)
    for span in text.inline:
        words |= _inline_operators(span, r)
    # a converter's message fixes a name's namespace: the same name found as a plain word is that operator
    fixed = {o.name for o in found}
    return sorted(found | {o for o in words if o.name not in fixed})


def format_operators(ops: Iterable[Operator]) -> str:
    """Space-separated ``namespace:Name`` (the gold file's and the store's spelling)."""
    return " ".join(str(o) for o in sorted(set(ops)))
