"""Reproducible random samples of the filtered issues, written as labelling queue files.

Queue file format (the labelling tool reads it with :func:`pipeline.labelling.queue.read_queue_file`;
:func:`read_queue` here also keeps each URL's converter block), UTF-8 text:

- one GitHub issue URL per line (``https://github.com/OWNER/NAME/issues/N``), in labelling order;
- lines starting with ``#`` are comments; a comment ``# converter: NAME`` starts the block of
  that converter (URLs after it belong to it until the next such line);
- blank lines are ignored.

Example::

    # labelling queue: 100 issues per converter, seed 0, from the data-availability filter
    # converter: torch.onnx
    https://github.com/pytorch/pytorch/issues/12345
    # converter: tf2onnx
    https://github.com/onnx/tensorflow-onnx/issues/678

The sample per converter is ``random.Random(f"{seed}:{converter}").sample`` over that
converter's kept issue URLs sorted by issue number: the same store, seed and n give the same
file on any machine and Python version, and adding a converter does not change another's draw.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.paths import PROJECT_ROOT
from pipeline.sample.filter import filtered_issues
from pipeline.sources import Source, load_sources, parse_issue_url

_CONVERTER_PREFIX = "# converter:"


def default_queue() -> Path:
    """``data/queue-sample.txt``."""
    return PROJECT_ROOT / "data" / "queue-sample.txt"


@dataclass(frozen=True)
class QueueItem:
    converter: str | None
    url: str


def sample_issues(conn: sqlite3.Connection, n: int = 100, seed: int = 0,
                  sources: list[Source] | None = None) -> dict[str, list[str]]:
    """``{converter: [url, ...]}``: up to ``n`` kept issues drawn at random per converter."""
    if n < 1:
        raise UserError(f"--n {n}: must be at least 1")
    sources = sources if sources is not None else load_sources()
    by_source: dict[str, list[tuple[int, str]]] = {s.name: [] for s in sources}
    for r in filtered_issues(conn, sources=sources):
        by_source.setdefault(r["source"], []).append((r["number"], r["url"]))
    out: dict[str, list[str]] = {}
    for name, items in by_source.items():
        urls = [u for _, u in sorted(items)]
        rng = random.Random(f"{seed}:{name}")
        out[name] = rng.sample(urls, min(n, len(urls)))
    return out


def write_queue(path: Path | str, samples: dict[str, list[str]], *, n: int, seed: int) -> Path:
    """Write ``samples`` as a queue file (format in the module docstring)."""
    p = Path(path)
    lines = [f"# labelling queue: up to {n} issues per converter, seed {seed}, from the data-availability filter"]
    for name, urls in samples.items():
        lines.append(f"{_CONVERTER_PREFIX} {name}")
        lines.extend(urls)
    if p.is_dir():
        raise UserError(f"{p}: is a folder; --out takes a queue file name (e.g. {p / 'queue-sample.txt'})")
    tmp = p.with_name(p.name + ".tmp")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        tmp.replace(p)   # atomic: a reader never sees half a queue
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise UserError(f"{p}: cannot write the queue file: {e.strerror or e}") from None
    return p


def read_queue(path: Path | str) -> list[QueueItem]:
    """Parse a queue file; a bad line raises :class:`UserError` naming file and line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{p}: queue file not found") from None
    converter = None
    out: list[QueueItem] = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            if s.lower().startswith(_CONVERTER_PREFIX):
                converter = s[len(_CONVERTER_PREFIX):].strip() or None
            continue
        try:
            parse_issue_url(s)
        except ValueError:
            raise UserError(f"{p}:{i}: not a GitHub issue URL: {s!r}") from None
        out.append(QueueItem(converter, s))
    return out
