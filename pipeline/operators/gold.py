"""The hand-made operator gold (``labels/operators-gold.csv``) and the extractor's scores on it.

The gold file has one row per issue: ``url, split, operators, note``; ``operators`` is a
space-separated list of ``namespace:Name`` (empty: the issue names no operator); ``split`` is
``dev`` (looked at while developing the extractor) or ``heldout`` (scored only). Scores are
micro-averaged over (issue, operator) pairs: precision = correct / extracted, recall =
correct / gold.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError
from pipeline.operators.dictionary import NAMESPACES
from pipeline.operators.extract import Operator, extract_operators
from pipeline.paths import labels_dir, shared_dir

SPLITS = ("dev", "heldout")


def default_gold() -> Path:
    return labels_dir() / "operators-gold.csv"


def default_issue_files() -> list[Path]:
    d = shared_dir() / "github-issues"
    return [d / "study-issues.jsonl", d / "converter-issues.jsonl"]


@dataclass
class GoldIssue:
    url: str
    split: str
    operators: frozenset[Operator]
    note: str = ""


def read_gold(path: Path | str | None = None) -> list[GoldIssue]:
    """The gold rows; a bad row is a :class:`UserError` naming the file, line and value."""
    p = Path(path) if path else default_gold()
    if not p.is_file():
        raise UserError(f"{p}: gold file not found")
    out, seen = [], set()
    with p.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = {"url", "split", "operators"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{p}: missing column(s) {', '.join(sorted(missing))}")
        for n, row in enumerate(reader, start=2):
            url = (row["url"] or "").strip()
            if not url.startswith("https://github.com/") or url in seen:
                raise UserError(f"{p}:{n}: url {url!r} is not a GitHub issue URL or is repeated")
            seen.add(url)
            split = (row["split"] or "").strip()
            if split not in SPLITS:
                raise UserError(f"{p}:{n}: split {split!r}: expected one of {', '.join(SPLITS)}")
            ops = set()
            for item in (row["operators"] or "").split():
                try:
                    op = Operator.parse(item)
                except ValueError as e:
                    raise UserError(f"{p}:{n}: operators: {e}") from None
                if op.namespace not in NAMESPACES:
                    raise UserError(f"{p}:{n}: operators: unknown namespace in {item!r} (use {', '.join(NAMESPACES)})")
                ops.add(op)
            out.append(GoldIssue(url, split, frozenset(ops), (row.get("note") or "").strip()))
    return out


def read_issue_texts(files: Iterable[Path | str]) -> dict[str, dict]:
    """``{url: {repo, title, body, comments}}`` from JSON-lines files of issue text (``../shared/github-issues``)."""
    out: dict[str, dict] = {}
    for f in files:
        p = Path(f)
        if not p.is_file():
            raise UserError(f"{p}: issue text file not found (../shared/github-issues is only on project machines and CI)")
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                out[r["url"]] = {"repo": r.get("repo"), "title": r.get("title") or "", "body": r.get("body") or "",
                                 "comments": [c.get("body") or "" for c in r.get("comments") or []]}
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
                raise UserError(f"{p}:{n}: not an issue record ({e})") from None
    return out


@dataclass
class Score:
    """Micro-averaged precision and recall over (issue, operator) pairs."""

    issues: int = 0
    correct: int = 0
    extracted: int = 0
    gold: int = 0
    errors: list[dict] = field(default_factory=list)  # per issue: url, missed, spurious (names only)

    @property
    def precision(self) -> float:
        return self.correct / self.extracted if self.extracted else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.gold if self.gold else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def to_dict(self) -> dict:
        return {"issues": self.issues, "correct": self.correct, "extracted": self.extracted, "gold": self.gold,
                "precision": round(self.precision, 4), "recall": round(self.recall, 4), "f1": round(self.f1, 4),
                "errors": self.errors}


def score(gold: Iterable[GoldIssue], predicted: Mapping[str, Iterable[Operator]]) -> dict[str, Score]:
    """Scores per split and over all (``"all"``) of ``predicted`` (by URL) against ``gold``."""
    scores = {s: Score() for s in (*SPLITS, "all")}
    for g in gold:
        pred = set(predicted.get(g.url, ()))
        for s in (g.split, "all"):
            sc = scores[s]
            sc.issues += 1
            sc.correct += len(pred & g.operators)
            sc.extracted += len(pred)
            sc.gold += len(g.operators)
            if pred != g.operators and s != "all":
                sc.errors.append({"url": g.url, "missed": sorted(map(str, g.operators - pred)),
                                  "spurious": sorted(map(str, pred - g.operators))})
    return scores


def evaluate_gold(gold_path: Path | str | None = None, issue_files: Iterable[Path | str] | None = None) -> dict[str, Score]:
    """Run the extractor on every gold issue's text and score it."""
    gold = read_gold(gold_path)
    texts = read_issue_texts(issue_files or default_issue_files())
    missing = [g.url for g in gold if g.url not in texts]
    if missing:
        raise UserError(f"{len(missing)} gold issue(s) have no text in the issue files, e.g. {missing[0]}")
    predicted = {g.url: extract_operators(texts[g.url]["title"], texts[g.url]["body"], texts[g.url]["comments"],
                                          texts[g.url]["repo"]) for g in gold}
    return score(gold, predicted)
