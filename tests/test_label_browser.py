"""The labelling page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
keyboard-only labelling with resume and correction, and inert rendering of hostile bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.codebook import load_codebook
from pipeline.labelling.app import LabelSession, create_app
from tests.label_store import write_demo_store
from pipeline.labelling.queue import read_queue_file
from pipeline.labelling.serve import BackgroundServer
from pipeline.labelling.storage import read_records
from pipeline.label_files.files import read_labels
from pipeline.paths import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium "
                       "(apt-get install -y chromium, see .ci/install-browser.sh)"),
]


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


@pytest.fixture
def served(tmp_path):
    db = tmp_path / "store.db"
    urls = write_demo_store(db)
    queue = tmp_path / "queue.txt"
    queue.write_text("# sample\n" + "\n".join(urls) + "\n")
    session = LabelSession(rater="alice", queue=read_queue_file(queue), db_path=db, labels_dir=tmp_path / "labels",
                           codebook=load_codebook())
    with BackgroundServer(create_app(session)) as base:
        yield session, base.rstrip("/")


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = ctx.new_page()
    pg.dialogs = []
    pg.errors = []
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    ctx.close()


def _keys(page, *keys):
    for k in keys:
        page.keyboard.press(k)


def test_keyboard_only_labelling_resume_and_change(served, page):
    session, base = served
    q = session.queue
    page.goto(base + "/")
    page.wait_for_url("**/item/0")
    assert page.locator(".dim.focused").get_attribute("data-dim") == "stage"

    # 1: Node Conversion / Crash / Incompatibility -> subtype External
    _keys(page, "2", "1", "2")
    assert page.locator(".dim.focused").get_attribute("data-dim") == "cause_subtype"
    _keys(page, "2", "Enter")
    page.wait_for_url("**/item/1")
    # 2: Validation / Wrong Model / Algorithmic Error (key a), no subtype needed
    _keys(page, "5", "2", "a", "Enter")
    page.wait_for_url("**/item/2")
    # 3: Optimization / Hang / Type Problem -> Tensor, with a note
    _keys(page, "3", "5", "3", "2", "n")
    page.keyboard.type("slow pass")
    _keys(page, "Escape", "Enter")
    page.wait_for_url("**/item/3")

    # an incomplete label is not saved: the page says so and stays
    _keys(page, "1", "Enter")
    page.wait_for_selector("#status.error")
    assert "choose a symptom" in page.inner_text("#status")
    assert page.url.endswith("/item/3")

    # help overlay
    _keys(page, "?")
    assert page.is_visible("#help") and "save and go to the next issue" in page.inner_text("#help")
    _keys(page, "Escape")
    assert not page.is_visible("#help")

    # reload, and a fresh visit of / : both resume at the fourth issue
    page.reload()
    assert page.url.endswith("/item/3")
    page.goto(base + "/")
    page.wait_for_url("**/item/3")
    assert page.inner_text("#progress-count").strip() == "3 / 7"

    # back twice, change the symptom of the second issue, save
    _keys(page, "ArrowLeft")
    page.wait_for_url("**/item/2")
    assert page.input_value("#note") == "slow pass"
    _keys(page, "p")
    page.wait_for_url("**/item/1")
    assert page.get_attribute("#choice-symptom-wrong_model", "aria-pressed") == "true"
    _keys(page, "ArrowDown", "6", "Enter")
    page.wait_for_url("**/item/2")

    # the screenshot: issue 4 half-labelled, so focus and selection show
    page.goto(base + "/item/3")
    _keys(page, "2", "1")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "label-page.png"))
    assert not page.errors and not page.dialogs

    recs = read_records(session.store.path)
    assert len(recs) == 4
    expected = {
        q[0]: ("node_conversion", "crash", "incompatibility", "external", ""),
        q[1]: ("validation", "unreported", "algorithmic_error", "", ""),
        q[2]: ("optimization", "hang", "type_problem", "tensor", "slow pass"),
    }
    latest = {r["url"]: r for r in recs}
    assert {u: (r["stage"], r["symptom"], r["cause"], r["cause_subtype"], r["note"]) for u, r in latest.items()} == expected
    assert [r["url"] for r in recs] == [q[0], q[1], q[2], q[1]]
    assert recs[1]["symptom"] == "wrong_model"  # the first choice is kept in the history
    df = read_labels(session.store.path).set_index("url")
    assert df.loc[q[1], "symptom"] == "unreported" and len(df) == 3


def test_hostile_issue_renders_inert(served, page):
    session, base = served
    pos = len(session.queue) - 1  # the demo's injection issue
    page.goto(f"{base}/item/{pos}")
    page.wait_for_selector("#issue-body")
    body = page.inner_text("#issue-body")
    for text in ('<script>window.__xss = 1; alert("script")</script>', "image: x",
                 "[click me](javascript:window.__xss=3)", "<iframe src=", "hover div", "<svg onload="):
        assert text in body
    assert "<script>window.__xss=8</script>" in page.inner_text("h1.title")
    assert page.locator("#issue a").count() >= 1
    assert page.locator("#issue script, #issue img, #issue iframe, #issue svg, #issue [onerror], #issue [onclick]").count() == 0
    # poke at everything that could fire
    page.hover("text=hover div")
    page.click("text=hover div")
    page.click("text=click me")
    page.mouse.move(10, 10)
    page.wait_for_timeout(200)
    assert page.evaluate("window.__xss") is None
    assert page.dialogs == []
    assert page.url.endswith(f"/item/{pos}")
    # the page's own script still works under the CSP
    _keys(page, "1")
    assert page.get_attribute("#choice-stage-load_model", "aria-pressed") == "true"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "label-page-hostile.png"))


def _csv(path, rows):
    path.write_text("url,stage,symptom,cause,cause_subtype,rater\n" + "".join(",".join(r) + "\n" for r in rows))


def test_adjudication_by_keyboard_writes_the_choice(tmp_path, page):
    """Two label files disagree on two issues: the page shows both labels side by side, starts from
    what they agree on, and the adjudicator's keyboard choices land in labels/<adjudicator>.jsonl."""
    from pipeline.labelling.sessions import adjudication_session

    db = tmp_path / "store.db"
    urls = write_demo_store(db, xss=False)
    a = tmp_path / "ann.csv"
    _csv(a, [(urls[0], "export", "crash", "typo", "", "ann"),
             (urls[1], "node_conversion", "crash", "incompatibility", "external", "ann"),
             (urls[2], "export", "hang", "typo", "", "ann")])
    from pipeline.labelling.storage import LabelStore
    ben = LabelStore(tmp_path / "other", "ben", load_codebook())
    ben.save(urls[0], {"stage": "export", "symptom": "crash", "cause": "typo"})                       # agrees
    ben.save(urls[1], {"stage": "node_conversion", "symptom": "wrong_model", "cause": "incompatibility",
                       "cause_subtype": "internal"})                                                   # symptom, subtype
    ben.save(urls[2], {"stage": "optimization", "symptom": "hang", "cause": "typo"})                  # stage
    session = adjudication_session(a, ben.path, "carol", db=db, labels_dir=tmp_path / "labels")
    assert session.queue == [urls[1], urls[2]]
    with BackgroundServer(create_app(session)) as base:
        base = base.rstrip("/")
        page.goto(base + "/")
        page.wait_for_url("**/item/0")
        assert "Adjudicating" in page.inner_text(".topbar")
        compare = page.inner_text("#compare")
        assert "ann.csv" in compare and "ben.jsonl" in compare and "Wrong Model" in compare and "Internal" in compare
        differ = page.locator("#compare tr.differ th").all_inner_texts()
        assert differ == ["symptom", "cause subtype"]
        # A and B badges sit beside the two raters' choices
        assert page.locator("#choice-symptom-crash .badge-a").count() == 1
        assert page.locator("#choice-symptom-wrong_model .badge-b").count() == 1
        # what both agree on is pre-selected; the focus waits on the first open dimension
        assert page.get_attribute("#choice-stage-node_conversion", "aria-pressed") == "true"
        assert page.locator(".dim.focused").get_attribute("data-dim") == "symptom"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "adjudicate-page.png"))
        # an incomplete decision is refused; then symptom Wrong Model (2), subtype External (2)
        _keys(page, "Enter")
        page.wait_for_selector("#status.error")
        _keys(page, "2", "Tab", "2")
        assert page.locator(".dim.focused").get_attribute("data-dim") == "cause_subtype"
        _keys(page, "2", "Enter")
        page.wait_for_url("**/item/1")
        # second: stage Optimization (3), the rest as agreed
        _keys(page, "3", "Enter")
        page.wait_for_url("**/done")
        assert "All 2 issues are labelled" in page.inner_text("main")
        assert not page.errors and not page.dialogs
    recs = read_records(tmp_path / "labels" / "carol.jsonl")
    got = {r["url"]: (r["stage"], r["symptom"], r["cause"], r["cause_subtype"], r["rater"]) for r in recs}
    assert len(recs) == 2 and got == {
        urls[1]: ("node_conversion", "wrong_model", "incompatibility", "external", "carol"),
        urls[2]: ("optimization", "hang", "typo", "", "carol"),
    }
    assert not (tmp_path / "labels" / "ann.jsonl").exists()  # the inputs are read, never written


def _start_cli(tmp_path, queue, db, port):
    import os
    import re
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "label", "--rater", "dora", "--queue", str(queue), "--db", str(db),
         "--port", str(port), "--labels-dir", str(tmp_path / "labels")],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    for _ in range(20):
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", proc.stdout.readline())
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise AssertionError(proc.stderr.read())


def test_kill_9_between_saves_loses_nothing_confirmed_and_the_open_page_saves_after_restart(tmp_path, page):
    import signal

    db = tmp_path / "store.db"
    urls = write_demo_store(db, xss=False)
    queue = tmp_path / "queue.txt"
    queue.write_text("\n".join(urls) + "\n")
    proc, port = _start_cli(tmp_path, queue, db, 0)
    base = f"http://127.0.0.1:{port}"
    try:
        page.goto(base + "/")
        page.wait_for_url("**/item/0")
        _keys(page, "4", "1", "b", "Enter")  # Export / Crash / Typo
        page.wait_for_url("**/item/1")      # confirmed: the page moved on
        _keys(page, "5", "2", "a", "Enter")
        page.wait_for_url("**/item/2")
        _keys(page, "3", "5", "b")          # chosen, not saved yet
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    path = tmp_path / "labels" / "dora.jsonl"
    assert [(r["url"], r["stage"]) for r in read_records(path)] == [(urls[0], "export"), (urls[1], "validation")]

    # the server is gone: saving says so, and the choices stay on the page
    _keys(page, "Enter")
    page.wait_for_selector("#status.error")
    assert "not answering" in page.inner_text("#status")
    assert page.get_attribute("#choice-stage-optimization", "aria-pressed") == "true"

    # restarted on the same port (new CSRF token): the open page saves without a reload
    proc, port2 = _start_cli(tmp_path, queue, db, port)
    try:
        assert port2 == port
        _keys(page, "Enter")
        page.wait_for_url("**/item/3")
        assert page.inner_text("#progress-count").strip() == f"3 / {len(urls)}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    recs = read_records(path)
    assert [(r["stage"], r["symptom"], r["cause"]) for r in recs] == [
        ("export", "crash", "typo"), ("validation", "wrong_model", "algorithmic_error"), ("optimization", "hang", "typo")]
    assert not page.errors


def test_two_tabs_labelling_at_once_lose_nothing(served, browser):
    session, base = served
    ctx = browser.new_context(viewport={"width": 1200, "height": 800})
    try:
        one, two = ctx.new_page(), ctx.new_page()
        one.goto(base + "/item/0")
        two.goto(base + "/item/1")
        # interleaved: both pages hold a label when the first one saves
        _keys(one, "1", "1", "b")
        _keys(two, "4", "2", "a")
        _keys(one, "Enter")
        _keys(two, "Enter")
        one.wait_for_url("**/item/1")
        two.wait_for_url("**/item/2")
        # the same issue from both tabs: both records kept, the later one wins
        one.goto(base + "/item/2")
        two.goto(base + "/item/2")
        _keys(one, "2", "1", "b", "Enter")
        one.wait_for_url("**/item/3")
        _keys(two, "2", "6", "b", "Enter")
        two.wait_for_url("**/item/3")
        assert two.inner_text("#progress-count").strip() == f"3 / {len(session.queue)}"
    finally:
        ctx.close()
    recs = read_records(session.store.path)
    assert [(r["url"], r["stage"], r["symptom"]) for r in recs] == [
        (session.queue[0], "load_model", "crash"), (session.queue[1], "export", "wrong_model"),
        (session.queue[2], "node_conversion", "crash"), (session.queue[2], "node_conversion", "unreported")]
    assert session.store.latest()[session.queue[2]]["symptom"] == "unreported"


def test_huge_traceback_scrolls_in_place_and_shows_its_error(tmp_path, page):
    from pipeline.store.db import connect
    from tests.label_store import insert_issue

    db = tmp_path / "store.db"
    frames = "".join(f'  File "torch/onnx/utils.py", line {i}, in _export\n    graph = _model_to_graph({"x" * 250})\n'
                     for i in range(300))
    body = ("It crashes:\n\n```\nTraceback (most recent call last):\n" + frames + "RuntimeError: the real error\n```\n\n"
            + "an unbroken line " + "y" * 4000)
    conn = connect(db)
    url = insert_issue(conn, "pytorch/pytorch", 4242, "Huge traceback", body, ["module: onnx"], "2023-01-01T00:00:00Z",
                       [{"event": "commented", "created_at": "2023-01-02T00:00:00Z", "user": {"login": "m"},
                         "body": "the comment after the traceback"}])
    conn.close()
    session = LabelSession(rater="alice", queue=[url], db_path=db, labels_dir=tmp_path / "labels")
    with BackgroundServer(create_app(session)) as base:
        page.goto(base + "item/0")
        pre = page.locator("#issue-body pre")
        box = pre.evaluate("p => ({sh: p.scrollHeight, ch: p.clientHeight, top: p.scrollTop, oy: getComputedStyle(p).overflowY})")
        assert box["oy"] == "auto" and box["sh"] > 3 * box["ch"]        # scrolls in its own box
        assert box["top"] + box["ch"] >= box["sh"] - 2                  # opened at its end ...
        assert pre.evaluate("p => { const r = document.createRange(); r.selectNodeContents(p);"
                            " const last = [...r.getClientRects()].pop(); const b = p.getBoundingClientRect();"
                            " return last.bottom <= b.bottom + 1 && last.top >= b.top - 1; }")  # ... the error line in view
        assert page.evaluate("document.documentElement.scrollWidth") <= 1400   # no sideways page scroll
        # the comment below is a short scroll away, not tens of screens
        assert page.locator(".comment").first.evaluate("c => c.getBoundingClientRect().top") < 3 * 900
        page.screenshot(path=str(ARTIFACTS / "label-page-traceback.png"))
        # the done page's help lists its keys
        page.goto(base + "done")
        _keys(page, "?")
        assert page.is_visible("#help") and "back to the last issue" in page.inner_text("#help")
        _keys(page, "Escape")
        assert not page.is_visible("#help")
        assert not page.errors


def test_every_key_of_the_help_overlay_works(served, browser):
    """The keys the overlay lists and the first test does not press: Shift+Tab, arrows up/down,
    s / p, j / k, o (opens GitHub in a new tab; the request is stopped here, never sent)."""
    session, base = served
    ctx, asked = _recording_context(browser, base, height=700)
    try:
        page = ctx.new_page()
        page.goto(base + "/item/0")
        focused = lambda: page.locator(".dim.focused").get_attribute("data-dim")  # noqa: E731
        _keys(page, "Tab")
        assert focused() == "symptom"
        _keys(page, "ArrowDown")
        assert focused() == "cause"
        _keys(page, "Shift+Tab")
        assert focused() == "symptom"
        _keys(page, "ArrowUp")
        assert focused() == "stage"
        _keys(page, "j", "j")
        page.wait_for_function("window.scrollY > 0")
        _keys(page, "k", "k")
        page.wait_for_function("window.scrollY === 0")
        with ctx.expect_page() as popup:
            _keys(page, "o")
        popup.value.wait_for_load_state()
        assert session.queue[0] in asked
        assert popup.value.evaluate("window.opener") is None  # noopener
        _keys(page, "S")  # Caps Lock on: letters still work
        page.wait_for_url("**/item/1")
        _keys(page, "ArrowRight")
        page.wait_for_url("**/item/2")
        _keys(page, "p")
        page.wait_for_url("**/item/1")
        _keys(page, "ArrowLeft")
        page.wait_for_url("**/item/0")
        _keys(page, "n")
        assert page.evaluate("document.activeElement.id") == "note"
        page.keyboard.type("1s and ps stay text")  # keys typed in the note are not commands
        _keys(page, "Escape")
        assert page.evaluate("document.activeElement.id") != "note"
        assert page.input_value("#note") == "1s and ps stay text" and page.url.endswith("/item/0")
        assert page.get_attribute("#choice-stage-load_model", "aria-pressed") == "false"
        _keys(page, "?")
        assert page.is_visible("#help")
        _keys(page, "?")
        assert not page.is_visible("#help")
        assert not read_records(session.store.path)  # skipping saves nothing
    finally:
        ctx.close()


def _one_issue_session(tmp_path, repo, number, title, body, comments=()):
    from pipeline.store.db import connect
    from tests.label_store import insert_issue

    db = tmp_path / "store.db"
    conn = connect(db)
    url = insert_issue(conn, repo, number, title, body, ["module: onnx"], "2024-11-20T00:00:00Z",
                       [{"event": "commented", "created_at": c.get("created_at") or "2024-11-21T00:00:00Z",
                         "user": {"login": c.get("author") or "someone"}, "body": c.get("body") or ""} for c in comments])
    conn.close()
    return LabelSession(rater="alice", queue=[url], db_path=db, labels_dir=tmp_path / "labels")


def _recording_context(browser, base, height=900):
    """A browser context that lets only the labelling server through and records everything else asked for."""
    ctx = browser.new_context(viewport={"width": 1400, "height": height})
    asked = []

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:
            asked.append(r.request.url)
            r.abort()

    ctx.route("**/*", route)
    return ctx, asked


def test_github_markup_renders_and_its_hostile_variants_stay_inert(tmp_path, browser):
    from tests.test_label_app import GITHUB_BODY

    session = _one_issue_session(tmp_path, "pytorch/pytorch", 4343, "Markup", GITHUB_BODY)
    with BackgroundServer(create_app(session)) as base:
        ctx, asked = _recording_context(browser, base)
        try:
            page = ctx.new_page()
            errors, dialogs = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(base + "item/0")
            body = page.locator("#issue-body")
            # folded logs: the open one shows its code with the indentation (tabs too) intact
            first = body.locator("details").first
            assert first.evaluate("d => d.open") is True
            code = first.locator("pre").inner_text()
            assert "    if x.sum() > 0:\n\treturn x" in code
            assert first.locator("pre").evaluate("p => getComputedStyle(p).whiteSpace") == "pre-wrap"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "label-page-github-markup.png"), full_page=True)
            # toggling and hovering everything fires nothing (ontoggle/onclick/onerror were dropped)
            for summary in body.locator("summary").all():
                summary.click()
                summary.hover()
            body.locator("text=ok link").hover()
            assert body.locator("table td").first.inner_text() == "Resize"
            assert body.locator("sub").inner_text() == "2"
            boxes = body.locator("input.task-list-item-checkbox")
            assert boxes.count() == 2 and all(boxes.nth(i).is_disabled() for i in range(2))
            assert boxes.nth(0).is_checked() and not boxes.nth(1).is_checked()
            # images are links, nothing was fetched from the network
            assert body.locator("img").count() == 0 and body.locator("a.image-link").count() == 4
            page.wait_for_timeout(200)
            assert asked == [] and page.evaluate("window.__xss") is None and not dialogs
            # the author's autofocus input is text: the keys still label
            page.keyboard.press("1")
            assert page.get_attribute("#choice-stage-load_model", "aria-pressed") == "true"
            assert not errors
        finally:
            ctx.close()


def _real_issue_with_details():
    """The first shared real issue whose text folds something in <details> and has a code block, or skip."""
    import json

    from pipeline.paths import shared_dir

    folder = shared_dir() / "github-issues"
    files = [folder / n for n in ("study-issues.jsonl", "converter-issues.jsonl") if (folder / n).is_file()]
    if not files:
        pytest.skip(f"real issue text not found at {folder} (../shared is only on project machines and CI)")
    for f in files:
        for line in f.read_text(encoding="utf-8").splitlines():
            issue = json.loads(line)
            body = issue.get("body") or ""
            if "<details" in body and "```" in body:
                return issue
    pytest.skip(f"no issue in {folder} has both <details> and a code block")


def test_real_issue_with_folded_log_and_code(tmp_path, browser):
    issue = _real_issue_with_details()
    body_md = issue["body"]
    session = _one_issue_session(tmp_path, issue["repo"], issue["number"], issue["title"], body_md,
                                 issue.get("comments") or [])
    # an indented line inside a fenced block: it must keep its leading whitespace on the page
    fences = body_md.split("```")[1::2]
    indented = next((ln for block in fences for ln in block.splitlines()[1:] if ln[:1] in (" ", "\t") and ln.strip()), None)
    with BackgroundServer(create_app(session)) as base:
        ctx, asked = _recording_context(browser, base)
        try:
            page = ctx.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(base + "item/0")
            body = page.locator("#issue-body")
            assert body.locator("details").count() >= 1 and body.locator("summary").count() >= 1
            assert body.locator("pre").count() >= 1
            # the raw HTML GitHub shows as markup is markup here too, not text
            assert "<details" not in body.inner_text() and "<summary" not in body.inner_text()
            for summary in body.locator("summary").all():
                summary.click()  # unfold everything, as a rater reading the log would
            if indented is not None:
                assert indented.rstrip() in "\n".join(body.locator("pre").all_inner_texts())
            assert not errors and asked == []
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "label-page-real-issue.png"), full_page=True)
        finally:
            ctx.close()
