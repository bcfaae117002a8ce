"""The emulator's JSON shapes against real GitHub responses recorded by PyGithub.

For issue, user, label, comment, repository and rate-limit objects and for timeline events of
every event type present in both, each recorded object's keys must be present in the
emulator's object. Where the emulator has more keys than an (older) recording, each extra key
must appear in a *newer* recording of the same object type: a superset is accepted only for
keys GitHub added later, never for invented keys; against the newest recording the key sets
are therefore equal.

Context-dependent keys are compared separately, since GitHub sends them only in some places:
``closed_by`` (only ``GET .../issues/{n}``), ``repository`` (only the issue embedded in a
cross-referenced event), ``pull_request`` and ``draft`` (only on pull requests; the 2012
recordings still carried a ``pull_request`` object with null URLs on every issue, which
GitHub dropped since).

Event types the emulator serves but the recordings lack (``connected``, ``mentioned``,
``unlabeled``) are compared with the recorded event of the same generic shape
(``subscribed``, or ``labeled`` for ``unlabeled``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import datetime
from email.utils import parsedate_to_datetime

import pytest
import requests

from pipeline.emulator.replay import Exchange, parse_replay, parse_replay_dir
from pipeline.emulator.server import EmulatorConfig, run_emulator
from pipeline.paths import shared_dir

PT, TF = "pytorch/pytorch", "onnx/tensorflow-onnx"
CONTEXT_ISSUE_KEYS = {"closed_by", "repository", "pull_request", "draft"}
GENERIC_EVENT = {"connected": "subscribed", "mentioned": "subscribed", "unlabeled": "labeled"}


@pytest.fixture(scope="module")
def recordings() -> dict[str, list[Exchange]]:
    d = shared_dir() / "github-replay"
    if not d.is_dir() or not any(d.glob("*.txt")):
        pytest.skip(f"recorded GitHub responses not found at {d} (../shared is only on project machines and CI)")
    return parse_replay_dir(d)


def _date(ex: Exchange) -> datetime:
    return parsedate_to_datetime(ex.header("Date"))


def _walk(obj, parent_key=None):
    """Yield (parent key, dict) for every dict nested in obj."""
    if isinstance(obj, dict):
        yield parent_key, obj
        for k, v in obj.items():
            yield from _walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk(v, parent_key)


def _is_issue(o: dict) -> bool:
    return "number" in o and "title" in o and "labels" in o


def _issue_route(ex: Exchange) -> bool:
    return bool(re.fullmatch(r"/repos/[^/]+/[^/]+/issues(/\d+(/(timeline|comments))?)?", ex.route))


def classify(bodies: list[tuple[datetime, object, str]]) -> dict[str, list[tuple[datetime, dict]]]:
    """Sort every object of issue-related bodies by type: issue, user, label, comment,
    embedded_repository, event:<type>. ``route_kind`` tells timeline bodies apart."""
    out: dict[str, list[tuple[datetime, dict]]] = defaultdict(list)
    for date, body, route_kind in bodies:
        for parent, o in _walk(body):
            if "login" in o:
                out["user"].append((date, o))
            elif parent == "labels" and "name" in o:
                out["label"].append((date, o))
            elif _is_issue(o):
                out["issue"].append((date, o))
            elif parent == "repository" and "full_name" in o:
                out["embedded_repository"].append((date, o))
        items = body if isinstance(body, list) else []
        for o in items:
            if route_kind == "timeline" and "event" in o:
                out[f"event:{o['event']}"].append((date, o))
                if o["event"] == "commented":
                    out["comment"].append((date, {k: v for k, v in o.items() if k not in ("event", "actor")}))
            if route_kind == "comments":
                out["comment"].append((date, o))
    return out


def _route_kind(route: str) -> str:
    return "timeline" if route.endswith("/timeline") else "comments" if route.endswith("/comments") else "other"


@pytest.fixture(scope="module")
def recorded(recordings):
    bodies = []
    for exchanges in recordings.values():
        for ex in exchanges:
            if ex.status == 200 and _issue_route(ex) and ex.body:
                body = ex.json()
                # PaginatedList.testIteration's bodies were trimmed to ids by PyGithub: not shapes.
                if isinstance(body, list) and body and set(body[0]) == {"id"}:
                    continue
                bodies.append((_date(ex), body, _route_kind(ex.route)))
    return classify(bodies)


@pytest.fixture(scope="module")
def served():
    """Bodies the emulator serves for the same kinds of requests (N=60, every event type)."""
    with run_emulator(EmulatorConfig(issues=60)) as emu:
        s = requests.Session()

        def get(path, **params):
            r = s.get(emu.url + path, params=params, timeout=10)
            assert r.status_code == 200, (path, r.status_code)
            return r.json()

        bodies = []
        kinds_seen: set[str] = set()
        for repo in (PT, TF):
            listing = get(f"/repos/{repo}/issues", state="all", per_page=100)
            bodies.append((listing, "other"))
            issue = next(i for i in listing if "pull_request" not in i and i["state"] == "closed")
            pr = next(i for i in listing if "pull_request" in i)
            bodies += [(get(f"/repos/{repo}/issues/{issue['number']}"), "other"),
                       (get(f"/repos/{repo}/issues/{pr['number']}"), "other")]
            for rec in emu.dataset.issues[repo].values():
                kinds = {e.kind for e in rec.events}
                if kinds - kinds_seen or rec.linkage.startswith("xref"):
                    kinds_seen |= kinds
                    bodies.append((get(f"/repos/{repo}/issues/{rec.number}/timeline", per_page=100), "timeline"))
                    if "commented" in kinds:
                        bodies.append((get(f"/repos/{repo}/issues/{rec.number}/comments"), "comments"))
        repo_body = get(f"/repos/{PT}")
        rate = get("/rate_limit")
    now = datetime.now().astimezone()
    objects = {kind: [o for _, o in objs] for kind, objs in classify([(now, b, k) for b, k in bodies]).items()}
    return {"objects": objects, "repo": repo_body, "rate_limit": rate}


def _check(kind: str, emu_objs: list[dict], recs: list[tuple[datetime, dict]], ignore: set[str] = frozenset()):
    """Recorded keys ⊆ emulator keys; extra keys only if a newer recording of `kind` has them."""
    assert emu_objs, f"emulator served no {kind}"
    assert recs, f"no recorded {kind}"
    emu_keysets = {frozenset(o) - ignore for o in emu_objs}
    for date, r in recs:
        rk = set(r) - ignore
        later = [set(o) for d, o in recs if d > date]
        newer = set().union(*later)
        for ek in emu_keysets:
            # A recorded key may be absent only if a newer recording lacks it too (GitHub dropped it).
            missing = {k for k in rk - ek if not any(k not in o for o in later)}
            assert not missing, f"{kind}: emulator lacks recorded keys {sorted(missing)} (recording of {date:%Y-%m-%d})"
            invented = ek - rk - newer
            assert not invented, (f"{kind}: emulator has keys {sorted(invented)} that no recording of "
                                  f"{date:%Y-%m-%d} or later has")


def test_recordings_parse(recordings):
    assert len(recordings) >= 10
    ex = recordings["ConditionalRequestUpdate.testDidNotUpdate"][0]
    assert ex.status == 304 and ex.body == "" and ex.header("etag") and ex.request_headers["If-None-Match"]
    listing = recordings["Repository.testGetIssues"][0]
    assert listing.method == "GET" and listing.route == "/repos/PyGithub/PyGithub/issues"
    assert isinstance(listing.json(), list) and listing.port is None
    args = [e for e in recordings["Repository.testGetIssuesWithArguments"] if "since" in e.query]
    assert args and args[0].query["since"] == "2012-05-28T23:00:00Z"


def test_parse_replay_rejects_garbage(tmp_path):
    from pipeline.errors import UserError

    bad = tmp_path / "bad.txt"
    bad.write_text("https\nGET\napi.github.com\nNone\n/x\n{'a': 1}\nNone\nOK\n[]\n{}\n\n")
    with pytest.raises(UserError, match=r"bad\.txt:8"):
        parse_replay(bad)


def test_issue_objects_have_the_recorded_keys(recorded, served):
    emu = served["objects"]["issue"]
    _check("issue", emu, recorded["issue"], ignore=CONTEXT_ISSUE_KEYS)
    # The context-dependent keys, where GitHub sends them.
    assert any("closed_by" in o for d, o in recorded["issue"]) and any("closed_by" in o for o in emu)
    # Cross-referenced sources embed their repository, in the recordings and in the emulator.
    sources = [o["source"]["issue"] for o in served["objects"]["event:cross-referenced"]]
    recorded_sources = [o["source"]["issue"] for d, o in recorded["event:cross-referenced"]]
    assert all("repository" in o for o in recorded_sources) and all("repository" in o for o in sources)
    assert all("repository" not in o for o in emu if o not in sources)
    # Pull requests: `pull_request` with the newest recorded keys, and `draft`; issues have neither.
    prs = [o for o in emu if "pull_request" in o]
    newest_pr = max(((d, o) for d, o in recorded["issue"] if "draft" in o), key=lambda x: x[0])[1]
    assert prs and all(set(o["pull_request"]) == set(newest_pr["pull_request"]) for o in prs)
    assert all("draft" in o for o in prs) and all("draft" not in o for o in emu if "pull_request" not in o)


@pytest.mark.parametrize("kind", ["user", "label", "comment", "embedded_repository"])
def test_nested_objects_have_the_recorded_keys(recorded, served, kind):
    _check(kind, served["objects"][kind], recorded[kind])


def test_timeline_events_have_the_recorded_keys_per_type(recorded, served):
    emu = served["objects"]
    emu_types = {k.split(":", 1)[1] for k in emu if k.startswith("event:")}
    rec_types = {k.split(":", 1)[1] for k in recorded if k.startswith("event:")}
    both = emu_types & rec_types
    assert {"closed", "referenced", "cross-referenced", "commented", "labeled", "subscribed",
            "assigned", "committed", "merged"} <= both
    for t in sorted(both):
        _check(f"event:{t}", emu[f"event:{t}"], recorded[f"event:{t}"])
    for t, like in GENERIC_EVENT.items():
        assert t in emu_types, t
        _check(f"event:{t} (shaped like {like})", emu[f"event:{t}"], recorded[f"event:{like}"])
    assert {"connected"} <= emu_types - rec_types
    # Nested shapes: a labeled event's label, a cross-reference's source, a commit's parts.
    for t, key in (("labeled", "label"), ("cross-referenced", "source")):
        rk = {frozenset(o[key]) for d, o in recorded[f"event:{t}"]}
        assert {frozenset(o[key]) for o in emu[f"event:{t}"]} <= rk, t
    for key in ("author", "committer", "tree", "verification"):
        rk = {frozenset(o[key]) for d, o in recorded["event:committed"]}
        assert {frozenset(o[key]) for o in emu["event:committed"]} == rk, key


def test_repository_and_rate_limit_bodies(recordings, served):
    repos = [(_date(e), e.json()) for ex in recordings.values() for e in ex
             if e.status == 200 and re.fullmatch(r"/repos/[^/]+/[^/]+", e.route)]
    _check("repository", [served["repo"]], repos)
    newest = max(repos, key=lambda x: x[0])[1]
    assert set(served["repo"]) == set(newest)
    assert set(served["repo"]["owner"]) == set(newest["owner"])
    # The rate-limit bodies were re-recorded after their headers: date them by their own reset time.
    rates = [(datetime.fromtimestamp(e.json()["rate"]["reset"]).astimezone(), e.json())
             for ex in recordings.values() for e in ex if e.route == "/rate_limit"]
    _check("rate_limit", [served["rate_limit"]], rates)
    _check("rate_limit.resources", [served["rate_limit"]["resources"]], [(d, o["resources"]) for d, o in rates])
    for name, res in served["rate_limit"]["resources"].items():
        assert set(res) == {"limit", "used", "remaining", "reset"}, name


def test_headers_and_error_bodies_match_github(recordings):
    modern = [e for ex in recordings.values() for e in ex if e.status == 200 and e.header("X-RateLimit-Used")]
    assert modern
    wanted = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-used",
              "x-ratelimit-resource", "content-type"}
    with run_emulator(EmulatorConfig(issues=5, rate_limit=1)) as emu:
        r = requests.get(f"{emu.url}/repos/{PT}/issues", timeout=10)
        for e in modern:
            recorded_names = {k.lower() for k, _ in e.response_headers}
            assert wanted & recorded_names <= {k.lower() for k in r.headers}
        assert r.headers["Content-Type"] == modern[0].header("Content-Type")
        assert r.headers["X-RateLimit-Resource"] == modern[0].header("X-RateLimit-Resource")
        # ETag like the modern recordings: weak, quoted, 64 hex digits.
        assert re.fullmatch(r'W/"[0-9a-f]{64}"', r.headers["ETag"])
        assert re.fullmatch(r'W/"[0-9a-f]{64}"', recordings["Issue.setUp"][1].header("ETag"))
        # Rate limit spent: 403 with a message PyGithub (and GitHub's docs) recognise.
        limited = requests.get(f"{emu.url}/repos/{PT}/issues", timeout=10)
        rec = [e for e in recordings["SpecificExceptions.testRateLimitExceeded"] if e.status == 403][0]
        assert limited.status_code == rec.status == 403
        assert limited.headers["X-RateLimit-Remaining"] == rec.header("x-ratelimit-remaining") == "0"
        assert set(rec.json()) <= set(limited.json())
        assert limited.json()["message"].lower().startswith(rec.json()["message"].lower()[:23])
        # Not modified: empty body, same ETag, like the recording.
        emu.reset_stats()
    rec304 = recordings["ConditionalRequestUpdate.testDidNotUpdate"][0]
    with run_emulator(EmulatorConfig(issues=5)) as emu:
        first = requests.get(f"{emu.url}/repos/{PT}", timeout=10)
        again = requests.get(f"{emu.url}/repos/{PT}", headers={"If-None-Match": first.headers["ETag"]}, timeout=10)
        assert again.status_code == rec304.status == 304 and again.content == b"" == rec304.body.encode()
        assert again.headers["ETag"] == first.headers["ETag"]


def test_link_header_format_matches_recording(recordings):
    part = re.compile(r'^<([^>]+)>; rel="(next|last|first|prev)"$')
    order = ["next", "last", "first", "prev"]
    rec = [e.header("link") for e in recordings["PaginatedList.testIteration"]]
    middle = rec[1]
    rels = [part.match(p).group(2) for p in middle.split(", ")]
    assert rels == order
    with run_emulator(EmulatorConfig(issues=60)) as emu:
        r = requests.get(f"{emu.url}/repos/{TF}/issues", params={"state": "all", "per_page": "10", "page": "2"},
                         timeout=10)
        got = r.headers["Link"].split(", ")
        assert [part.match(p).group(2) for p in got] == rels
        for p in got:
            url = part.match(p).group(1)
            assert url.startswith(emu.url + f"/repos/{TF}/issues?")
