"""The labelling page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
keyboard-only labelling with resume and correction, and inert rendering of hostile bodies."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.codebook import load_codebook
from pipeline.label.app import LabelSession, create_app
from tests.label_store import write_demo_store
from pipeline.label.queue import read_queue_file
from pipeline.label.serve import BackgroundServer
from pipeline.label.storage import read_records
from pipeline.labels.files import read_labels
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
    for text in ('<script>window.__xss = 1; alert("script")</script>', "<img src=x onerror=",
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
