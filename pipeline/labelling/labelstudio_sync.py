"""Live sync with a Label Studio server through its official SDK (``label-studio-sdk``).

``push``: find or create the project (config from the codebook, each task labelled by
:data:`DEFAULT_OVERLAP` annotators so agreement can be computed), import the issues it does
not hold yet (tasks keyed by ``data.url``), and give every task the current model's
pre-annotation, tagged with the model id, which becomes the project's pre-labelling version.
Pushing again adds only new issues and refreshes predictions: no task is duplicated.

``pull``: every annotator's latest annotation of every task, into one label file per
annotator (``<labels-dir>/<rater>.jsonl``, the format of ``mine label``), so ``mine agree``
and ``mine adjudicate`` work unchanged. Skipped (cancelled) tasks are reported, not imported.

The token comes from ``LABEL_STUDIO_API_KEY`` (legacy token or personal access token) and is
never printed, logged or stored; the server's failures become one-line :class:`UserError`\\ s.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.codebook import Codebook
from pipeline.errors import UserError
from pipeline.labelling.labelstudio import labeling_config, model_predictions, task_data
from pipeline.labelling.labelstudio_import import Pulled, annotations_of, append_new, collect, rater_names

TOKEN_ENV = "LABEL_STUDIO_API_KEY"
DEFAULT_PROJECT = "Converter failures"
DEFAULT_OVERLAP = 2
BATCH = 200  # tasks or predictions per request
TIMEOUT = 60.0


@contextmanager
def server_errors(url: str, doing: str) -> Iterator[None]:
    """Turn what the SDK raises into one line naming the server and what was being done (no token)."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        yield
    except ApiError as e:
        code = e.status_code
        if code == 401:
            raise UserError(f"{url}: Label Studio refused the token in {TOKEN_ENV} (HTTP 401) while {doing}; "
                            "copy a current one from Account & Settings in Label Studio") from None
        if code == 403:
            raise UserError(f"{url}: the token's user may not do this (HTTP 403 while {doing}); "
                            "ask the project's owner for the role, or use the owner's token") from None
        if code == 404:
            raise UserError(f"{url}: no Label Studio API here (HTTP 404 while {doing}); give the address you open "
                            "in the browser, e.g. http://localhost:8080") from None
        detail = e.body.get("detail") if isinstance(e.body, dict) else None
        raise UserError(f"{url}: Label Studio answered HTTP {code} while {doing}"
                        + (f": {str(detail)[:300]}" if detail else "")) from None
    except (httpx.ConnectError, httpx.RemoteProtocolError) as e:
        raise UserError(f"{url}: cannot connect ({_reason(e)}) while {doing}; is Label Studio running there "
                        "(`label-studio start`)?") from None
    except httpx.TimeoutException:
        raise UserError(f"{url}: no answer within {TIMEOUT:.0f} s while {doing}") from None
    except httpx.HTTPError as e:
        raise UserError(f"{url}: {type(e).__name__} while {doing}: {_reason(e)}") from None
    except ValueError as e:  # JSON that is not Label Studio's (pydantic's ValidationError is one)
        raise UserError(f"{url}: does not answer like Label Studio while {doing} ({type(e).__name__})") from None


def _reason(e: Exception) -> str:
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


@dataclass
class Server:
    """An SDK client and the address it talks to (for messages)."""

    url: str
    client: Any


def connect(url: str, token: str | None = None) -> Server:
    """A server at ``url`` whose token was accepted (``token`` defaults to ``$LABEL_STUDIO_API_KEY``)."""
    from label_studio_sdk import LabelStudio

    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"--label-studio {url!r}: not an http(s) URL (e.g. http://localhost:8080)")
    token = token if token is not None else os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        raise UserError(f"{TOKEN_ENV} is not set: copy your access token from Account & Settings in Label Studio "
                        f"into it (export {TOKEN_ENV}=...)")
    base = url.rstrip("/")
    with server_errors(base, "checking the token"):
        client = LabelStudio(base_url=base, api_key=token.strip(), timeout=TIMEOUT)
        client.users.whoami()
    return Server(base, client)


def find_project(server: Server, title: str):
    """The project titled exactly ``title`` (None if there is none)."""
    with server_errors(server.url, "listing projects"):
        for p in server.client.projects.list(title=title):
            if p.title == title:
                return p
    return None


def project_titles(server: Server) -> list[str]:
    with server_errors(server.url, "listing projects"):
        return [p.title for p in server.client.projects.list()]


def _tasks(server: Server, project_id: int) -> list[dict]:
    """Every task of the project with its annotations and predictions, as plain JSON."""
    with server_errors(server.url, "listing the project's tasks"):
        return [t.model_dump(mode="json") for t in server.client.tasks.list(project=project_id, fields="all")]


@dataclass
class PushResult:
    """What :func:`push` did."""

    url: str
    project: str
    project_id: int
    created: bool = False
    config_updated: bool = False
    added: int = 0
    new_with_prediction: int = 0
    present: int = 0
    model_id: str | None = None
    predictions_added: int = 0
    predictions_updated: int = 0
    without_prediction: list[str] = field(default_factory=list)


def push(server: Server, urls: list[str], conn: sqlite3.Connection, codebook: Codebook, *,
         project: str = DEFAULT_PROJECT, overlap: int = DEFAULT_OVERLAP, progress: bool = False) -> PushResult:
    """Create or update ``project`` with ``urls`` as tasks and the latest model's pre-annotations."""
    config = labeling_config(codebook)
    base, client = server.url, server.client
    proj = find_project(server, project)
    res = PushResult(base, project, 0)
    if proj is None:
        with server_errors(base, f"creating project {project!r}"):
            proj = client.projects.create(
                title=project, label_config=config, maximum_annotations=overlap, overlap_cohort_percentage=100,
                description=f"Converter failure taxonomy (codebook {codebook.version}), pushed by `mine labels push`",
                show_skip_button=True, enable_empty_annotation=False)
        res.created = True
    elif _normalized(proj.label_config) != _normalized(config):
        with server_errors(base, f"updating the labelling config of {project!r} to codebook {codebook.version}"):
            client.projects.update(proj.id, label_config=config)
        res.config_updated = True
    res.project_id = proj.id
    by_url = {str((t.get("data") or {}).get("url") or ""): t for t in _tasks(server, proj.id)}
    preds = model_predictions(conn, codebook)
    res.model_id = next(iter(preds.values()))["model_version"] if preds else None
    wanted = list(dict.fromkeys(urls))
    new = [u for u in wanted if u not in by_url]
    res.present = len(wanted) - len(new)
    res.without_prediction = [u for u in wanted if u not in preds]
    # tasks there already: the current model's prediction added, or brought up to date
    missing, changed = [], []
    for url, task in by_url.items():
        p = preds.get(url)
        if p is None:
            continue
        ours = [x for x in task.get("predictions") or [] if isinstance(x, dict) and x.get("model_version") == p["model_version"]]
        if not ours:
            missing.append({"task": task["id"], **p})
        elif _normalized_result(ours[0].get("result")) != _normalized_result(p["result"]) \
                or abs(float(ours[0].get("score") or 0) - p["score"]) > 1e-6:
            changed.append((ours[0]["id"], p))
    with _bar(progress, len(new) + len(missing) + len(changed)) as advance:
        for i in range(0, len(new), BATCH):
            batch = [{"data": task_data(conn, u), **({"predictions": [preds[u]]} if u in preds else {})}
                     for u in new[i:i + BATCH]]
            with server_errors(base, f"importing tasks into {project!r}"):
                client.projects.import_tasks(proj.id, request=batch)
            res.added += len(batch)
            res.new_with_prediction += sum(1 for t in batch if "predictions" in t)
            advance(len(batch))
        for i in range(0, len(missing), BATCH):
            with server_errors(base, "adding the current model's predictions"):
                client.projects.import_predictions(proj.id, request=missing[i:i + BATCH])
            res.predictions_added += len(missing[i:i + BATCH])
            advance(len(missing[i:i + BATCH]))
        for pid, p in changed:
            with server_errors(base, "refreshing predictions"):
                client.predictions.update(pid, result=p["result"], score=p["score"])
            res.predictions_updated += 1
            advance(1)
    if res.model_id and getattr(proj, "model_version", None) != res.model_id:
        # the version Label Studio pre-labels tasks with
        with server_errors(base, "selecting the model version for pre-annotations"):
            client.projects.update(proj.id, model_version=res.model_id)
    return res


@contextmanager
def _bar(show: bool, total: int) -> Iterator:
    """``advance(n)`` for a progress bar on stderr (a no-op when not shown)."""
    if not show or not total:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("pushing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("push", total=total)
        yield lambda n: bar.advance(task, n)


def _normalized(xml: str | None) -> str:
    return " ".join((xml or "").split())


def _normalized_result(result) -> list:
    return sorted((r.get("from_name"), tuple(r.get("value", {}).get("choices") or ())) for r in result or [])


@dataclass
class PullResult:
    """What :func:`pull` wrote: ``{rater: (file, new records, unchanged)}``, and who skipped what."""

    url: str
    project: str
    written: dict[str, tuple[Path, int, int]]
    annotators: dict[str, str]        # rater -> Label Studio e-mail
    pulled: Pulled


def pull(server: Server, project: str, codebook: Codebook, labels_dir: Path) -> PullResult:
    """One label file per annotator of ``project`` (appending only what changed since the last pull)."""
    base, client = server.url, server.client
    proj = find_project(server, project)
    if proj is None:
        titles = project_titles(server)
        raise UserError(f"{base}: no project named {project!r}"
                        + (f"; projects: {', '.join(repr(t) for t in titles)}" if titles else "; the server has no projects"))
    tasks = _tasks(server, proj.id)
    with server_errors(base, "listing users"):
        emails = {str(u.id): u.email or u.username or "" for u in client.users.list()}
    anns, empty = annotations_of(tasks, f"{base} project {project!r}")
    ids = {a.annotator for a in anns}
    names = rater_names({a: emails.get(a, "") for a in ids})
    pulled = collect(anns, codebook, f"{base} project {project!r}", lambda a: names[a])
    pulled.unannotated = empty
    written = append_new(labels_dir, pulled)
    return PullResult(base, project, written, {names[a]: emails.get(a, "") for a in ids}, pulled)
