"""The labelling web app (Starlette + Jinja2 + one plain JavaScript file, no build step).

Routes: ``GET /`` resumes at the first queue item without a label by this rater;
``GET /item/{pos}`` shows one issue; ``POST /api/label`` saves (JSON, same-origin, CSRF token);
``GET /done`` ends the queue; ``GET /api/token`` gives a page opened before a restart the
current token. Every response carries a strict Content-Security-Policy
(scripts only from ``/static``; no inline script) and ``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from pipeline.codebook import DIMENSIONS, SUBTYPE_DIMENSION, Codebook, load_codebook
from pipeline.labelling.issues import load_issue, predictions_for
from pipeline.labelling.queue import Disagreement
from pipeline.labelling.storage import LABEL_DIMENSIONS, LabelError, LabelStore
from pipeline.store.db import connect

HERE = Path(__file__).resolve().parent
# 1-9 then a, b, c...: the largest dimension (14 causes) ends at e; the letters the page uses
# as commands (j k n o p s) are never choice keys
CHOICE_KEYS = list("123456789abcdefghilmqrtuvwxyz")
# img-src has no remote source: issue images are shown as links (render.py), and a remote
# image that slipped through would still not be fetched (it would tell its host who reads what)
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# the time-left estimate: mean of the last 20 gaps between saves, each at most 10 minutes
PACE_WINDOW = 20
MAX_GAP = 600.0
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


@dataclass
class Adjudication:
    """Two label files and the issues they disagree on."""

    name_a: str
    name_b: str
    items: dict[str, Disagreement]


@dataclass
class LabelSession:
    """One server's state: who labels what, where labels go."""

    rater: str
    queue: list[str]
    db_path: Path | str | None
    labels_dir: Path
    blind: bool = False
    codebook: Codebook | None = None
    adjudication: Adjudication | None = None
    queue_note: str = ""
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # session pace: time of the first page shown, then the time of every save
    started: float | None = None
    save_times: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.codebook = self.codebook or load_codebook()
        self.store = LabelStore(Path(self.labels_dir), self.rater, self.codebook)
        self._db_lock = threading.Lock()
        self.conn = connect(self.db_path) if self.db_path is not None else connect(":memory:")

    # --- queue -------------------------------------------------------------------------
    def first_pending(self, latest: dict[str, dict]) -> int | None:
        """Position of the first queue item this rater has no record for (None: all done)."""
        for i, url in enumerate(self.queue):
            if url not in latest:
                return i
        return None

    def progress(self, latest: dict[str, dict]) -> dict:
        """Done / total and, after the first save, the time left at the session's pace."""
        done = sum(1 for u in self.queue if u in latest)
        total = len(self.queue)
        pace = self.pace()
        left = (total - done) * pace if pace is not None else None
        return {"done": done, "total": total, "percent": round(100 * done / total) if total else 100,
                "pace": _duration(pace) if pace is not None else "", "left": _duration(left) if left is not None else ""}

    def pace(self) -> float | None:
        """Seconds per issue: the mean of the last :data:`PACE_WINDOW` gaps between saves (the
        first gap from the first page shown), each capped at :data:`MAX_GAP` so a lunch break
        does not triple the estimate. None before the first save."""
        if self.started is None or not self.save_times:
            return None
        times = [self.started, *self.save_times][-(PACE_WINDOW + 1):]
        gaps = [min(max(b - a, 0.0), MAX_GAP) for a, b in zip(times, times[1:])]
        return sum(gaps) / len(gaps)

    def note_save(self, now: float | None = None) -> None:
        """Record a save at ``now`` (default: the monotonic clock) for the pace."""
        now = time.monotonic() if now is None else now
        if self.started is None:
            self.started = now
        self.save_times.append(now)
        del self.save_times[:-(PACE_WINDOW + 1)]


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    if s < 1:
        return "<1 s"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s" if s < 600 else f"{round(s / 60)} min"
    return f"{s // 3600} h {round((s % 3600) / 60)} min"


def _dimension_blocks(session: LabelSession, others: dict[str, dict], preds: dict[str, dict],
                      disagreement: Disagreement | None) -> list[dict]:
    """The choice lists the page shows, with keys, definitions and badges."""
    cb = session.codebook

    def badges(dim: str, cat: str) -> list[dict]:
        out = []
        if disagreement is not None and session.adjudication is not None:
            if disagreement.a.get(dim) == cat:
                out.append({"kind": "a", "text": "A", "title": session.adjudication.name_a})
            if disagreement.b.get(dim) == cat:
                out.append({"kind": "b", "text": "B", "title": session.adjudication.name_b})
        if not session.blind:
            p = preds.get(dim)
            if p and p["category"] == cat:
                out.append({"kind": "model", "text": f"model {p['probability']:.0%}", "title": p["model_id"]})
            for rater, rec in sorted(others.items()):
                if rec.get(dim) == cat:
                    out.append({"kind": "rater", "text": rater, "title": f"{rater}'s label"})
        return out

    blocks = []
    for dim in DIMENSIONS:
        d = cb.dimensions[dim]
        blocks.append({
            "id": dim, "display": d.display.split(" (")[0], "hint": d.display,
            "groups": [{"cause": "", "choices": [
                {"id": c.id, "display": c.display, "definition": c.definition, "key": CHOICE_KEYS[i],
                 "has_subtypes": bool(c.subtypes), "badges": badges(dim, c.id)}
                for i, c in enumerate(d.categories)]}],
        })
    groups = []
    for c in cb.dimensions["cause"].categories:
        if c.subtypes:
            groups.append({"cause": c.id, "cause_display": c.display, "choices": [
                {"id": s.id, "display": s.display, "definition": s.definition, "key": CHOICE_KEYS[i],
                 "has_subtypes": False, "badges": badges(SUBTYPE_DIMENSION, s.id)}
                for i, s in enumerate(c.subtypes)]})
    blocks.append({"id": SUBTYPE_DIMENSION, "display": "Cause subtype", "hint": "Only for causes that have subtypes",
                   "groups": groups})
    return blocks


def create_app(session: LabelSession, *, allowed_hosts: list[str] | None = None) -> Starlette:
    """The Starlette app of one labelling (or adjudication) session."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))

    def latest() -> dict[str, dict]:
        return session.store.latest()

    async def index(request: Request) -> Response:
        pos = session.first_pending(await run_in_threadpool(latest))
        return RedirectResponse("/done" if pos is None else f"/item/{pos}", status_code=303)

    def build_item(pos: int) -> dict:
        url = session.queue[pos]
        recs = latest()
        if session.started is None:
            session.started = time.monotonic()
        with session._db_lock:
            view = load_issue(session.conn, url)
            preds = {} if session.blind else predictions_for(session.conn, url)
        others = {} if session.blind else session.store.others().get(url, {})
        if session.adjudication is not None:
            # the two files under adjudication are shown side by side, not as other raters
            others = {}
        disagreement = session.adjudication.items.get(url) if session.adjudication else None
        mine = recs.get(url)
        if mine:
            current = {d: mine.get(d) or "" for d in LABEL_DIMENSIONS} | {"note": mine.get("note") or ""}
        elif disagreement is not None:
            # start from what the two raters agree on
            current = {d: disagreement.a.get(d, "") for d in LABEL_DIMENSIONS
                       if disagreement.a.get(d) and disagreement.a.get(d) == disagreement.b.get(d)}
        else:
            current = {}
        compare = None
        if disagreement is not None:
            cb = session.codebook
            compare = [{"dim": d, "a": cb.display(d, disagreement.a.get(d, "")) if disagreement.a.get(d) else "—",
                        "b": cb.display(d, disagreement.b.get(d, "")) if disagreement.b.get(d) else "—",
                        "differ": d in disagreement.dimensions} for d in LABEL_DIMENSIONS]
        return {
            "pos": pos, "url": url, "view": view, "current": current, "saved": bool(mine),
            "blocks": _dimension_blocks(session, others, preds, disagreement),
            "progress": session.progress(recs), "compare": compare,
            "adjudication": session.adjudication, "session": session,
            "others": others, "preds": preds,
            "page_data": {
                "pos": pos, "url": url,
                "prev": f"/item/{pos - 1}" if pos > 0 else None,
                "next": f"/item/{pos + 1}" if pos + 1 < len(session.queue) else "/done",
                "current": current,
                "dimensions": [*DIMENSIONS, SUBTYPE_DIMENSION],
                "subtypes": {c.id: [s.id for s in c.subtypes] for c in session.codebook.dimensions["cause"].categories},
                "github": view.url,
            },
        }

    async def item(request: Request) -> Response:
        pos = request.path_params["pos"]
        if not 0 <= pos < len(session.queue):
            return RedirectResponse("/", status_code=303)
        ctx = await run_in_threadpool(build_item, pos)
        return templates.TemplateResponse(request, "item.html", ctx)

    async def done(request: Request) -> Response:
        recs = await run_in_threadpool(latest)
        pending = session.first_pending(recs)
        return templates.TemplateResponse(request, "done.html", {
            "session": session, "progress": session.progress(recs), "pending": pending,
            "adjudication": session.adjudication,
        })

    def forbidden(reason: str, code: str = "forbidden") -> JSONResponse:
        return JSONResponse({"ok": False, "error": f"rejected: {reason}", "code": code}, status_code=403)

    def cross_site(request: Request) -> str | None:
        """Why a request is cross-site (None: it comes from a page of this server)."""
        site = request.headers.get("sec-fetch-site")
        if site is not None and site not in ("same-origin", "none"):
            return f"cross-site request (Sec-Fetch-Site: {site})"
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
            return f"foreign origin {origin!r}"
        return None

    async def token(request: Request) -> Response:
        # a page opened before the server restarted holds the old token: it asks for the new
        # one and saves again. Other sites cannot read this response (same-origin policy, no
        # CORS headers; foreign Host headers are refused), so it hands them nothing.
        reason = cross_site(request)
        if reason:
            return forbidden(reason)
        return JSONResponse({"token": session.csrf_token})

    async def save(request: Request) -> Response:
        # cross-site requests never reach the label file: the fetch metadata, the Origin and a
        # per-server token embedded in the page must all agree with this server
        reason = cross_site(request)
        if reason:
            return forbidden(reason)
        if not secrets.compare_digest(request.headers.get("x-csrf-token", ""), session.csrf_token):
            return forbidden("missing or wrong CSRF token", code="csrf")
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return JSONResponse({"ok": False, "error": "expected application/json"}, status_code=415)
        try:
            data = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return JSONResponse({"ok": False, "error": "body is not valid JSON"}, status_code=400)
        if not isinstance(data, dict):
            return JSONResponse({"ok": False, "error": "body must be a JSON object"}, status_code=400)
        url = str(data.get("url") or "")
        if url not in session.queue:
            return JSONResponse({"ok": False, "error": f"{url!r} is not in this session's queue"}, status_code=400)
        pos = session.queue.index(url)
        try:
            rec = await run_in_threadpool(session.store.save, url, data, str(data.get("note") or ""))
        except LabelError as e:
            return JSONResponse({"ok": False, "error": str(e)}, status_code=422)
        session.note_save()
        nxt = f"/item/{pos + 1}" if pos + 1 < len(session.queue) else "/done"
        return JSONResponse({"ok": True, "record": rec, "next": nxt})

    routes = [
        Route("/", index),
        Route("/item/{pos:int}", item),
        Route("/done", done),
        Route("/api/label", save, methods=["POST"]),
        Route("/api/token", token),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    hosts = allowed_hosts or ["127.0.0.1", "localhost"]
    app = Starlette(routes=routes, middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=hosts)])
    return SecurityHeaders(app)


class SecurityHeaders:
    """ASGI wrapper adding :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in {h.lower() for h in SECURITY_HEADERS}]
                headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
