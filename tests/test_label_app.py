"""The labelling web app over real HTTP (uvicorn on 127.0.0.1): pages, saves, CSRF, 422,
resume, blind mode, issues known only by URL, queue order and adjudication."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from html.parser import HTMLParser

import httpx
import pytest

from pipeline.codebook import load_codebook
from pipeline.labelling.app import LabelSession, create_app
from tests.label_store import XSS_BODY, write_demo_store
from pipeline.labelling.queue import default_queue, disagreements, order_by_uncertainty, read_queue_file
from pipeline.labelling.render import render_markdown
from pipeline.labelling.serve import BackgroundServer
from pipeline.labelling.sessions import adjudication_session
from pipeline.labelling.storage import LabelStore, latest_records
from pipeline.label_files.files import read_labels
from pipeline.errors import UserError
from pipeline.store.db import connect

UNCRAWLED = "https://github.com/pytorch/pytorch/issues/123"
FULL = {"stage": "node_conversion", "symptom": "crash", "cause": "incompatibility", "cause_subtype": "external"}


@pytest.fixture
def store(tmp_path):
    db = tmp_path / "store.db"
    urls = write_demo_store(db)
    conn = connect(db)
    with conn:
        conn.execute("INSERT INTO issue_titles(url, title, origin) VALUES (?, ?, 'study')", (UNCRAWLED, "Known only by its title"))
    conn.close()
    queue = tmp_path / "queue.txt"
    queue.write_text("# from mine sample\n" + "\n".join(urls) + f"\n{UNCRAWLED}  # not crawled\n")
    return db, urls + [UNCRAWLED], queue


def _session(tmp_path, store, **kw):
    db, urls, queue = store
    return LabelSession(rater=kw.pop("rater", "alice"), queue=read_queue_file(queue), db_path=db,
                        labels_dir=tmp_path / "labels", **kw)


@pytest.fixture
def served(tmp_path, store):
    """(session, client) on a real server; the client sends what the page's fetch sends."""
    session = _session(tmp_path, store)
    with BackgroundServer(create_app(session)) as url:
        with httpx.Client(base_url=url.rstrip("/"), follow_redirects=False, timeout=10) as client:
            yield session, client


def _post(client, session, body, **headers):
    h = {"Content-Type": "application/json", "X-CSRF-Token": session.csrf_token,
         "Origin": str(client.base_url), "Sec-Fetch-Site": "same-origin", **headers}
    return client.post("/api/label", content=json.dumps(body), headers={k: v for k, v in h.items() if v is not None})


def test_page_has_security_headers_token_and_no_inline_script(served):
    session, client = served
    r = client.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/item/0"
    page = client.get("/item/0")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert f'content="{session.csrf_token}"' in page.text
    # every script is either the static file or a JSON data block
    for tag in re.findall(r"<script[^>]*>", page.text):
        assert 'src="/static/label.js"' in tag or 'type="application/json"' in tag
    # codebook definitions beside the choices, timeline links, comments
    assert "The converter fails while reading or tracing the source model" in page.text
    assert "https://github.com/pytorch/pytorch/commit/" in page.text
    assert "Fix the handler" in page.text and "Can you try the nightly build?" in page.text
    assert client.get("/static/label.js").headers["content-type"].startswith(("text/javascript", "application/javascript"))


def test_cross_site_and_tokenless_posts_are_rejected(served):
    session, client = served
    url = session.queue[0]
    body = {"url": url, **FULL}
    assert _post(client, session, body, **{"X-CSRF-Token": None}).status_code == 403
    assert _post(client, session, body, **{"X-CSRF-Token": "forged"}).status_code == 403
    assert _post(client, session, body, Origin="http://evil.example").status_code == 403
    assert _post(client, session, body, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    # a plain HTML form cannot send JSON: other content types are refused
    r = client.post("/api/label", content="url=x", headers={"Content-Type": "application/x-www-form-urlencoded",
                                                            "X-CSRF-Token": session.csrf_token})
    assert r.status_code == 415
    # a foreign Host header (DNS rebinding) is refused outright
    assert client.get("/item/0", headers={"Host": "evil.example"}).status_code == 400
    assert not session.store.path.exists()
    ok = _post(client, session, body)
    assert ok.status_code == 200 and ok.json()["next"] == "/item/1"


def test_incomplete_label_is_refused_with_422(served):
    session, client = served
    url = session.queue[0]
    r = _post(client, session, {"url": url, "stage": "export", "symptom": "crash"})
    assert r.status_code == 422 and "cause is missing" in r.json()["error"]
    r = _post(client, session, {"url": url, **FULL, "cause_subtype": ""})
    assert r.status_code == 422 and "cause_subtype is missing" in r.json()["error"]
    r = _post(client, session, {"url": "https://github.com/a/b/issues/1", **FULL})
    assert r.status_code == 400
    assert not session.store.path.exists()


def test_resume_at_first_unlabelled_and_progress(served):
    session, client = served
    for url in session.queue[:2]:
        assert _post(client, session, {"url": url, **FULL, "note": "n"}).status_code == 200
    assert client.get("/").headers["location"] == "/item/2"
    page = client.get("/item/2").text
    assert "2 / 8" in page and "left" in page
    # going back shows the saved label pre-selected
    data = json.loads(re.search(r'<script type="application/json" id="page-data">(.*?)</script>', client.get("/item/0").text, re.S).group(1))
    assert data["current"]["cause_subtype"] == "external" and data["current"]["note"] == "n"
    for url in session.queue[2:]:
        _post(client, session, {"url": url, **FULL})
    assert client.get("/").headers["location"] == "/done"
    done = client.get("/done").text
    assert "All 8 issues are labelled" in done
    assert re.search(r'id="progress-eta">all labelled<', done)  # no "0 s left" once the queue is done


def test_uncrawled_issue_shows_link_and_title(served):
    session, client = served
    page = client.get(f"/item/{session.queue.index(UNCRAWLED)}").text
    assert "Known only by its title" in page
    assert f'href="{UNCRAWLED}"' in page and "not been crawled yet" in page


def _add_predictions(db, url, probs: dict[str, tuple[str, float]], model="clf-v1"):
    conn = connect(db)
    now = datetime.now(timezone.utc).isoformat()
    with conn:
        for dim, (cat, p) in probs.items():
            conn.execute("INSERT INTO predictions(url, dimension, category, probability, probs, model_id, created_at) "
                         "VALUES (?,?,?,?,?,?,?)", (url, dim, cat, p, json.dumps({cat: p}), model, now))
    conn.close()


def test_blind_hides_suggestions_and_other_raters(tmp_path, store):
    db, urls, _ = store
    _add_predictions(db, urls[0], {"stage": ("optimization", 0.81)})
    LabelStore(tmp_path / "labels", "bob", load_codebook()).save(urls[0], {**FULL, "symptom": "hang"})
    for blind in (False, True):
        session = _session(tmp_path, store, blind=blind)
        with BackgroundServer(create_app(session)) as url:
            page = httpx.get(url + "item/0", timeout=10).text
        assert ("model 81%" in page) is (not blind)
        assert ('badge-rater" title="bob' in page) is (not blind)


def test_default_queue_skips_labelled_and_puts_uncertain_first(tmp_path, store):
    db, urls, _ = store
    conn = connect(db)
    queue, note = default_queue(conn, labelled={urls[0]})
    assert urls[0] not in queue and queue and set(queue) <= set(urls)
    # no predictions yet: creation order
    assert queue == [u for u in urls if u in queue]
    conn.close()
    _add_predictions(db, urls[3], {"stage": ("export", 0.9), "cause": ("typo", 0.30)})
    _add_predictions(db, urls[2], {"stage": ("export", 0.6), "cause": ("typo", 0.55)})
    conn = connect(db)
    ordered = order_by_uncertainty(conn, urls)
    conn.close()
    assert ordered[:2] == [urls[3], urls[2]]
    assert ordered[2:] == [u for u in urls if u not in (urls[2], urls[3])]


def test_queue_file_errors_name_the_line(tmp_path):
    q = tmp_path / "q.txt"
    q.write_text("# header\nhttps://github.com/a/b/issues/1\nnot a url\n")
    with pytest.raises(UserError, match=r"q.txt:3"):
        read_queue_file(q)


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.elements = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)
        self.elements.append((tag, dict(attrs)))


def _parsed(html: str) -> _Tags:
    parsed = _Tags()
    parsed.feed(html)
    return parsed


def test_rendered_bodies_are_inert():
    html = render_markdown(XSS_BODY)
    parsed = _parsed(html)
    assert not {"script", "img", "iframe", "svg"} & set(parsed.tags)
    assert not [a for a, _ in parsed.attrs if a.startswith("on")]
    assert not [v for a, v in parsed.attrs if a in ("href", "src") and "javascript" in (v or "")]
    assert "&lt;script&gt;" in html and "hover div" in html  # still readable as text
    # <div> is on GitHub's allow-list: it stays, bare
    assert "<div>hover div</div>" in html
    link = render_markdown("[ok](https://example.org) <a href=x>raw</a>")
    assert 'rel="noopener noreferrer"' in link and 'target="_blank"' in link
    # the sanitizer alone (second line of defence) also strips live HTML
    from pipeline.labelling.render import sanitize
    cleaned = sanitize('<p onclick="x()">t</p><script>x()</script><a href="javascript:x()">l</a><iframe></iframe>')
    assert cleaned.startswith("<p>t</p>") and "script" not in cleaned and "javascript" not in cleaned and "iframe" not in cleaned


# GitHub's subset (html-pipeline's SanitizationFilter) and its hostile variants
GITHUB_BODY = """Export fails.

<details open ontoggle="window.__xss = 10">
<summary onclick="window.__xss = 11">Full log</summary>

```python
def forward(self, x):
    if x.sum() > 0:
\treturn x  # a tab
```

</details>

H<sub>2</sub>O<sup>+</sup> line<br>break <kbd>Ctrl</kbd>

| op | opset |
|----|------:|
| Resize | 11 |

- [x] reproduced on nightly
- [ ] tried opset 13

<img src="javascript:window.__xss = 12" alt="js image"> <img src="data:image/svg+xml,<svg onload=alert(13)>" alt="data image">
<img src="https://user-images.githubusercontent.com/1/graph.png" alt="netron graph" onerror="window.__xss = 14">
![shot](https://github.com/user-attachments/assets/abc "screenshot") <img src="x" onerror="alert(15)">
<a href="data:text/html,<script>alert(16)</script>">data link</a> <a href="JaVaScRiPt:alert(17)">js link</a>
<a href="../pull/7">relative link</a> <a href="https://example.org/" onmouseover="alert(18)" target="_self">ok link</a>
<details><summary>nested <img src=x onerror=alert(19)></summary><p id="page-data" class="overlay" style="position:fixed">shadow</p></details>
<input type="text" autofocus onfocus="alert(20)"> <form action="https://evil.example"><button>send</button></form>
<a href="https://example.org" accesskey="s" tabindex="1">keys</a> <Tensor> and <bound method Module.forward of x>

Docs: https://onnx.ai/sklearn-onnx/api.html#convert and javascript:alert(21) stays text
<!-- an issue template's hidden comment -->
"""


def test_github_subset_renders_and_hostile_variants_stay_inert():
    html = render_markdown(GITHUB_BODY, "https://github.com/pytorch/pytorch/issues/5")
    parsed = _parsed(html)
    tags = set(parsed.tags)
    assert {"details", "summary", "sub", "sup", "br", "kbd", "table", "th", "td", "pre", "code", "input"} <= tags
    # nothing that runs, loads or submits; no author ids, classes or styles, no keyboard hooks
    assert not {"img", "script", "iframe", "svg", "form", "button", "style"} & tags
    names = {a for a, _ in parsed.attrs}
    assert not [a for a in names if a.startswith("on")]
    assert not {"id", "style", "accesskey", "tabindex", "action", "autofocus"} & names
    assert {v for a, v in parsed.attrs if a == "class"} <= {"contains-task-list", "task-list-item",
                                                             "task-list-item-checkbox", "image-link"}
    hrefs = [v for a, v in parsed.attrs if a in ("href", "src")]
    assert all(h.startswith(("https://", "mailto:")) for h in hrefs), hrefs
    assert not [h for h in hrefs if "javascript" in h.lower() or h.startswith("data:")]
    assert [v for a, v in parsed.attrs if a == "target"] == ["_blank"] * parsed.tags.count("a")
    # code keeps its indentation, tabs included
    assert "    if x.sum() &gt; 0:\n\treturn x" in html
    # task lists: disabled checkboxes, one ticked; the author's own <input> is text
    boxes = [a for t, a in parsed.elements if t == "input"]
    assert len(boxes) == 2 and all(a.get("type") == "checkbox" and "disabled" in a for a in boxes)
    assert ["checked" in a for a in boxes] == [True, False]
    assert "&lt;input type=\"text\" autofocus" in html
    # images are links to open on purpose, never <img>; unsafe image URLs leave no link
    assert 'href="https://user-images.githubusercontent.com/1/graph.png"' in html and "image: netron graph" in html
    assert "image: shot" in html and "image: js image (not shown)" in html and "image: data image (not shown)" in html
    # relative links resolve against the issue, as on GitHub; stray tags and comments
    assert 'href="https://github.com/pytorch/pytorch/pull/7"' in html
    assert "&lt;Tensor&gt;" in html and "&lt;bound method Module.forward of x&gt;" in html
    assert "hidden comment" not in html
    # bare URLs are links, as GitHub autolinks them; a bare javascript: is not a URL
    assert '<a href="https://onnx.ai/sklearn-onnx/api.html#convert"' in html and "javascript:alert(21) stays text" in html
    # without a base, relative URLs are dropped rather than pointing into the labelling tool
    assert 'href="../pull/7"' not in render_markdown(GITHUB_BODY) and "/pull/7" not in render_markdown(GITHUB_BODY)


def _write_csv(path, rows):
    path.write_text("url,stage,symptom,cause,cause_subtype,rater\n" + "".join(",".join(r) + "\n" for r in rows))


def test_adjudication_queue_and_decision(tmp_path, store):
    db, urls, _ = store
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_csv(a, [(urls[0], "export", "crash", "typo", "", "ann"),
                   (urls[1], "export", "crash", "typo", "", "ann"),
                   (urls[2], "load_model", "hang", "incompatibility", "internal", "ann"),
                   (urls[3], "export", "crash", "typo", "", "ann")])
    _write_csv(b, [(urls[0], "export", "crash", "typo", "", "ben"),             # agree
                   (urls[1], "export", "wrong_model", "typo", "", "ben"),       # symptom differs
                   (urls[2], "load_model", "hang", "incompatibility", "external", "ben")])  # subtype differs
    items = disagreements(read_labels(a), read_labels(b))
    assert [(d.url, d.dimensions) for d in items] == [(urls[1], ["symptom"]), (urls[2], ["cause_subtype"])]
    session = adjudication_session(a, b, "judge", db=db, labels_dir=tmp_path / "labels")
    assert session.queue == [urls[1], urls[2]]
    with BackgroundServer(create_app(session)) as url:
        with httpx.Client(base_url=url.rstrip("/"), timeout=10) as client:
            page = client.get("/item/0").text
            assert "a.csv" in page and "b.csv" in page and "Wrong Model" in page
            data = json.loads(re.search(r'id="page-data">(.*?)</script>', page, re.S).group(1))
            assert data["current"] == {"stage": "export", "cause": "typo"}  # agreed parts pre-filled
            r = _post(client, session, {"url": urls[1], "stage": "export", "symptom": "crash", "cause": "typo"})
            assert r.status_code == 200
    rec = latest_records(tmp_path / "labels" / "judge.jsonl")[urls[1]]
    assert rec["symptom"] == "crash" and rec["rater"] == "judge"
    same = tmp_path / "same.csv"
    _write_csv(same, [(urls[0], "export", "crash", "typo", "", "x")])
    with pytest.raises(UserError, match="nothing to adjudicate"):
        adjudication_session(a, same, "judge", db=db, labels_dir=tmp_path / "labels")


def test_mine_label_cli_serves_on_loopback_and_prints_its_url(tmp_path, store):
    """`mine label` end to end: a real process, --port 0, the printed URL answers."""
    import subprocess
    import sys

    from pipeline.paths import PROJECT_ROOT

    db, urls, queue = store
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "label", "--rater", "cli_user", "--queue", str(queue), "--db", str(db),
         "--port", "0", "--labels-dir", str(tmp_path / "labels")],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        url = None
        for _ in range(20):
            line = proc.stdout.readline()
            m = re.search(r"(http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
        r = httpx.get(url, follow_redirects=True, timeout=10)
        assert r.status_code == 200 and "ONNX export of bicubic Upsample" in r.text
    finally:
        proc.terminate()
        proc.wait(10)


def test_bad_rater_and_missing_queue_are_user_errors(tmp_path, store):
    from pipeline.labelling.sessions import label_session

    db, urls, queue = store
    with pytest.raises(UserError, match="rater"):
        label_session("../x", queue_file=queue, db=db, labels_dir=tmp_path)
    with pytest.raises(UserError, match="queue file not found"):
        label_session("ok", queue_file=tmp_path / "nope.txt", db=db, labels_dir=tmp_path)


def test_queue_file_not_utf8_names_the_line_and_urls_get_one_spelling(tmp_path):
    q = tmp_path / "q.txt"
    q.write_bytes(b"https://github.com/pytorch/pytorch/issues/1\n\xff\xfe oops\n")
    with pytest.raises(UserError, match=r"q.txt:2: not UTF-8"):
        read_queue_file(q)
    # http, a trailing slash or /pull/ name the same issue as the store's https://.../issues/N
    q.write_text("\ufeffhttp://github.com/pytorch/pytorch/issues/1/\nhttps://github.com/pytorch/pytorch/pull/1\n"
                 "https://github.com/onnx/tensorflow-onnx/pull/7  # a PR\n")
    assert read_queue_file(q) == ["https://github.com/pytorch/pytorch/issues/1",
                                  "https://github.com/onnx/tensorflow-onnx/issues/7"]


def test_time_left_follows_the_pace_and_ignores_a_long_break(tmp_path, store):
    session = _session(tmp_path, store)
    assert session.progress({})["left"] == ""  # no pace before the first save
    session.started = 1000.0
    for t in (1030.0, 1060.0, 1090.0):
        session.note_save(t)
    p = session.progress({u: {} for u in session.queue[:3]})
    assert (p["done"], p["total"], p["pace"], p["left"]) == (3, 8, "30 s", "2 min 30 s")
    session.note_save(1090.0 + 2 * 3600)  # back from two hours away: one gap counts as 10 minutes at most
    p = session.progress({u: {} for u in session.queue[:4]})
    assert p["pace"] == "2 min 52 s" and p["left"] == "12 min"  # (30 + 30 + 30 + 600) / 4 per issue, 4 left
    for i in range(1, 21):  # the break leaves the window after 20 more saves
        session.note_save(1090.0 + 2 * 3600 + 20 * i)
    assert session.progress({})["pace"] == "20 s"
    for i in range(1, 22):  # a fast robot: no "0 s per issue"
        session.note_save(9000.0 + 0.2 * i)
    assert session.progress({})["pace"] == "<1 s"


def test_token_endpoint_serves_only_the_servers_own_pages(served):
    session, client = served
    assert client.get("/api/token", headers={"Sec-Fetch-Site": "same-origin"}).json() == {"token": session.csrf_token}
    assert client.get("/api/token", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/api/token", headers={"Origin": "http://evil.example"}).status_code == 403
    assert client.get("/api/token", headers={"Host": "evil.example"}).status_code == 400
    r = _post(client, session, {"url": session.queue[0], **FULL}, **{"X-CSRF-Token": "stale"})
    assert r.status_code == 403 and r.json()["code"] == "csrf"


def _run_cli(tmp_path, *args):
    import os
    import subprocess
    import sys

    from pipeline.paths import PROJECT_ROOT

    return subprocess.Popen([sys.executable, "-m", "pipeline", *args], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _printed_url(proc, host="127.0.0.1"):
    for _ in range(20):
        m = re.search(rf"(http://{re.escape(host)}:\d+/)", proc.stdout.readline())
        if m:
            return m.group(1)
    return None


def test_host_other_than_loopback_name_warns_that_there_is_no_login(tmp_path, store):
    """--host anything but 127.0.0.1/localhost/::1 prints the no-login warning (127.0.0.2 is still
    this machine, so the test listens on no network)."""
    db, urls, queue = store
    common = ["--rater", "cli_user", "--queue", str(queue), "--db", str(db), "--port", "0", "--labels-dir", str(tmp_path / "labels")]
    for host, warned in (("127.0.0.2", True), ("127.0.0.1", False)):
        proc = _run_cli(tmp_path, "label", *common, "--host", host)
        try:
            url = _printed_url(proc, host)
            assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
            assert httpx.get(url, follow_redirects=True, timeout=10).status_code == 200
        finally:
            proc.terminate()
            proc.wait(10)
        err = proc.stderr.read()
        assert ("no login" in err) is warned, err
        if warned:
            assert "warning" in err and host in err and "cli_user" in err


def test_two_raters_on_a_20_issue_queue_then_agree_then_adjudicate(tmp_path, store):
    """Two raters label the same 20 issues at once (two servers, one labels folder); `mine agree`
    reports kappa per dimension; adjudication settles every disagreement into a third file."""
    import threading

    from typer.testing import CliRunner

    from pipeline.cli import app as mine

    db, _, _ = store
    queue = [f"https://github.com/pytorch/pytorch/issues/{5000 + i}" for i in range(20)]  # known only by URL
    labels = tmp_path / "labels"
    cb = load_codebook()
    stages, symptoms = cb.ids("stage"), cb.ids("symptom")

    def label_of(rater, i):
        lab = {"stage": stages[i % len(stages)], "symptom": symptoms[i % len(symptoms)],
               "cause": ("typo", "algorithmic_error")[i % 2], "cause_subtype": ""}
        if rater == "bob" and i % 4 == 0:
            lab["symptom"] = symptoms[(i + 1) % len(symptoms)]  # bob disagrees on every 4th issue
        if rater == "bob" and i % 5 == 0:
            lab["stage"] = stages[(i + 2) % len(stages)]
        return lab

    sessions = {r: LabelSession(rater=r, queue=queue, db_path=db, labels_dir=labels, blind=True) for r in ("alice", "bob")}
    errors = []

    def rate(rater):
        s = sessions[rater]
        with BackgroundServer(create_app(s)) as url:
            with httpx.Client(base_url=url.rstrip("/"), timeout=10) as client:
                for i, u in enumerate(queue):
                    r = _post(client, s, {"url": u, **label_of(rater, i)})
                    if r.status_code != 200:
                        errors.append(r.text)

    threads = [threading.Thread(target=rate, args=(r,)) for r in sessions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    a, b = labels / "alice.jsonl", labels / "bob.jsonl"
    assert len(latest_records(a)) == len(latest_records(b)) == 20

    res = CliRunner().invoke(mine, ["agree", str(a), str(b), "--format", "json"])
    assert res.exit_code == 0, res.output
    agreement = json.loads(res.output)
    assert agreement["n"] == 20
    kappa = {d: v["kappa"] for d, v in agreement["dimensions"].items()}
    assert 0 < kappa["stage"] < 1 and 0 < kappa["symptom"] < 1

    expected = {u for i, u in enumerate(queue) if i % 4 == 0 or i % 5 == 0}
    judge = adjudication_session(a, b, "carol", db=db, labels_dir=labels)
    assert set(judge.queue) == expected
    with BackgroundServer(create_app(judge)) as url:
        with httpx.Client(base_url=url.rstrip("/"), timeout=10) as client:
            for u in judge.queue:
                assert _post(client, judge, {"url": u, **label_of("alice", queue.index(u))}).status_code == 200
            assert client.get("/").headers["location"] == "/done"
    third = latest_records(labels / "carol.jsonl")
    assert set(third) == expected and all(r["rater"] == "carol" for r in third.values())
    # the two raters' files are untouched by adjudication
    assert len(read_labels(a)) == len(read_labels(b)) == 20
