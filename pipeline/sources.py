"""Converter sources (``sources.yaml``): repository and label rules per converter.

The packaged default holds the six ONNX converters the paper names: the study's two
(torch.onnx, tf2onnx) with the study's exact rules, and paddle2onnx, sklearn-onnx, onnx2torch
and onnx-tf with rules in its spirit (where each comes from: the comments in the file).
``--sources FILE`` (or ``MINE_SOURCES``) points at another YAML file of the same form.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from pipeline.errors import UserError

DEFAULT_SOURCES = Path(__file__).with_name("sources.yaml")
_URL_RE = re.compile(r"^https?://github\.com/([^/\s]+/[^/\s]+)/(?:issues|pull)/(\d+)/?$")


# the paper's "pytorch or tensorflow-onnx repository" (data-availability filter, cross-references):
# the default of a source without xref_repos, and what the study's two sources use
DEFAULT_XREF_REPOS: tuple[str, ...] = ("pytorch/pytorch", "onnx/tensorflow-onnx")


def label_names(issue: dict) -> list[str]:
    """Names of an issue's labels (GitHub sends objects; tolerate plain strings)."""
    return [lab["name"] if isinstance(lab, dict) else str(lab) for lab in issue.get("labels") or []]


@dataclass(frozen=True)
class Source:
    """One converter: its name, repository and the study's relevance rule."""

    name: str
    repo: str
    state: str = "closed"
    labels: tuple[str, ...] = ()
    exclude_labels: tuple[str, ...] = ()
    # data-availability filter: a `cross-referenced` event counts only when its closed source
    # issue lives in one of these repositories (the paper: "the pytorch or tensorflow-onnx
    # repository"; other converters: their own, the framework they convert, onnx/onnx)
    xref_repos: tuple[str, ...] = DEFAULT_XREF_REPOS

    def is_relevant(self, issue: dict) -> bool:
        """The relevance filter on a GitHub issue object: state, labels, no pull requests."""
        if "pull_request" in issue:
            return False
        if self.state != "all" and issue.get("state") != self.state:
            return False
        names = set(label_names(issue))
        if any(lab not in names for lab in self.labels):
            return False
        return not any(lab in names for lab in self.exclude_labels)


_KEYS = {"name", "repo", "state", "labels", "exclude_labels", "xref_repos"}


def _names(value: object, where: str) -> tuple[str, ...]:
    """A YAML list of names (labels, repositories); a bare string is a mistake worth naming."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise UserError(f"{where} must be a list of names, e.g. [\"module: onnx\"] (got {value!r})")
    return tuple(value)


def load_sources(path: Path | str | None = None) -> list[Source]:
    """Read and validate a sources file (default: the packaged ``sources.yaml``)."""
    p = Path(path or os.environ.get("MINE_SOURCES") or DEFAULT_SOURCES)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{p}: sources file not found") from None
    except yaml.YAMLError as e:
        raise UserError(f"{p}: not valid YAML: {e}".replace("\n", " ")) from None
    entries = data.get("sources") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise UserError(f"{p}: needs a top-level 'sources:' list with at least one source")
    out: list[Source] = []
    for i, e in enumerate(entries, 1):
        if not isinstance(e, dict) or not e.get("name") or not re.fullmatch(r"[^/\s]+/[^/\s]+", str(e.get("repo", ""))):
            raise UserError(f"{p}: source #{i} needs 'name' and 'repo' as owner/name (got {e!r})")
        where = f"{p}: source {e['name']!r}"
        unknown = sorted(set(e) - _KEYS)
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(_KEYS))}")
        state = e.get("state", "closed")
        if state not in ("closed", "open", "all"):
            raise UserError(f"{where}: state must be closed, open or all (got {state!r})")
        lists = {k: _names(e.get(k), f"{where}: {k}") for k in ("labels", "exclude_labels", "xref_repos")}
        out.append(Source(name=str(e["name"]), repo=str(e["repo"]), state=state,
                          labels=lists["labels"], exclude_labels=lists["exclude_labels"],
                          **({"xref_repos": lists["xref_repos"]} if lists["xref_repos"] else {})))
    repos = [s.repo.lower() for s in out]
    shared = sorted({r for r in repos if repos.count(r) > 1})
    if shared:
        # issues are stored by (repo, number) with one source each
        raise UserError(f"{p}: more than one source in repository {', '.join(shared)}; give each repository one source")
    names = [s.name for s in out]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UserError(f"{p}: duplicate source name(s) {', '.join(sorted(dup))}")
    return out


def get_source(name: str, sources: list[Source] | None = None) -> Source:
    """The source called ``name``; a :class:`UserError` lists the known names otherwise."""
    sources = sources if sources is not None else load_sources()
    for s in sources:
        if s.name == name:
            return s
    raise UserError(f"unknown source {name!r}; known: {', '.join(s.name for s in sources)}")


def parse_issue_url(url: str) -> tuple[str, int]:
    """``https://github.com/OWNER/NAME/issues/N`` -> (``OWNER/NAME``, N)."""
    m = _URL_RE.match(url.strip())
    if not m:
        raise ValueError(f"not a GitHub issue URL: {url!r}")
    return m.group(1), int(m.group(2))


def issue_url(repo: str, number: int) -> str:
    return f"https://github.com/{repo}/issues/{number}"


def converter_for_repo(repo: str, sources: list[Source] | None = None) -> str | None:
    """Name of the converter whose source lives in ``repo`` (case-insensitive), if any."""
    sources = sources if sources is not None else load_sources()
    for s in sources:
        if s.repo.lower() == repo.lower():
            return s.name
    return None
