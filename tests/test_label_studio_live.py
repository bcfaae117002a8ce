"""Live sync against a real Label Studio (installed by .ci/install-label-studio.sh, started here on
127.0.0.1 with a throwaway data folder and two users): push twice without duplicates, a new model's
predictions refreshed, annotations by two users in the format Label Studio's UI sends (one with a
subtype, one edited after a cause change, skips), pull into one label file per annotator,
`mine agree` between them; exports (JSON, JSON-MIN) through `mine labels import`; and in Chromium,
Label Studio's own labelling view of a pushed task: indentation kept, the subtype required."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline.codebook import load_codebook
from pipeline.label_files.files import read_labels
from pipeline.labelling.labelstudio_import import import_export
from pipeline.labelling.storage import read_records
from pipeline.paths import PROJECT_ROOT
from pipeline.store.db import connect
from tests.helpers import run_mine
from tests.label_store import _timeline, insert_issue, write_demo_store
from tests.label_studio_server import LabelStudioServer, missing_reason

pytestmark = [pytest.mark.slow, pytest.mark.skipif(missing_reason() is not None, reason=missing_reason() or "")]

ALICE, BOB = "alice@lab.test", "bob.m@lab.test"
PROJECT = "Converter failures (test)"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
EXTRA = [  # four more made-up issues beside the demo store's six
    ("pytorch/pytorch", 91004, "Exporting nn.GRU with dynamic sequence length fails", "`RuntimeError: Unsupported: ONNX export of GRU`"),
    ("onnx/tensorflow-onnx", 2104, "tf2onnx crashes on tf.image.resize with antialias", "Crash in `resize` handler."),
    ("pytorch/pytorch", 91005, "Quantized Conv2d exports with the wrong zero point", "Outputs differ after export."),
    ("onnx/tensorflow-onnx", 2105, "Converter hangs on a model with 20k nodes", "Runs for hours in constant folding."),
]


@pytest.fixture(scope="module")
def ls(tmp_path_factory):
    folder = tmp_path_factory.mktemp("label-studio")
    with LabelStudioServer(folder, [ALICE, BOB]) as server:
        yield server
    # the cost of a real Label Studio in the test run (printed with -s, kept as a test artifact)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "label-studio-timings.txt").write_text(
        "".join(f"{k}: {v:.1f} s\n" for k, v in server.timings.items()), encoding="utf-8")
    print("Label Studio timings:", {k: round(v, 1) for k, v in server.timings.items()})


def _store(path: Path) -> list[str]:
    urls = write_demo_store(path, xss=False)
    conn = connect(path)
    for i, (repo, number, title, body) in enumerate(EXTRA):
        created = f"2023-10-1{i}T10:00:00Z"
        urls.append(insert_issue(conn, repo, number, title, body, ["bug"], created, _timeline(repo, number, created)))
    conn.close()
    return urls


def _predict(db: Path, model: str, rows: dict[str, dict[str, tuple[str, float]]]) -> None:
    """Store a classify run of ``model``: {url: {dim: (category, probability)}} (what `mine classify` writes)."""
    conn = connect(db)
    now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    with conn:
        for url, dims in rows.items():
            for dim, (cat, p) in dims.items():
                conn.execute("INSERT OR REPLACE INTO predictions(url, dimension, category, probability, probs, model_id, "
                             "created_at) VALUES (?,?,?,?,?,?,?)", (url, dim, cat, p, json.dumps({cat: p}), model, now))
    conn.close()


def _mine(ls, *args, user=ALICE):
    res = run_mine(*args, env={"LABEL_STUDIO_API_KEY": ls.users[user].token})
    # the token is never echoed, whatever happens
    assert ls.users[user].token not in res.stdout + res.stderr
    return res


def _choice(tag: str, value: str, origin: str = "manual") -> dict:
    """One result item exactly as Label Studio's editor serializes a choice (random 10-character id)."""
    return {"value": {"choices": [value]}, "id": secrets.token_urlsafe(8)[:10], "from_name": tag, "to_name": "text",
            "type": "choices", "origin": origin}


def _ui_body(project_id: int, prediction: int | None = None) -> dict:
    """The other fields the editor sends with a submit (POST /api/tasks/<id>/annotations?project=<id>)."""
    return {"request_options": {"additional_query_parameters": {"project": project_id},
                                "additional_body_parameters": {"draft_id": 0, "parent_annotation": None,
                                                               "started_at": datetime.now(timezone.utc).isoformat(),
                                                               "project": str(project_id)}},
            "lead_time": 12.5, "parent_prediction": prediction}


def _submit(client, project_id: int, task: dict, label: dict, note: str = ""):
    result = [_choice(d, v) for d, v in label.items()]
    if note:
        result.append({"value": {"text": [note]}, "id": secrets.token_urlsafe(8)[:10], "from_name": "note",
                       "to_name": "text", "type": "textarea", "origin": "manual"})
    preds = task.get("predictions") or []
    return client.annotations.create(id=task["id"], result=result, **_ui_body(project_id, preds[0]["id"] if preds else None))


def _tasks(client, project_id: int) -> dict[str, dict]:
    return {t.data["url"]: t.model_dump(mode="json") for t in client.tasks.list(project=project_id, fields="all")}


def _project(client, title: str):
    return next(p for p in client.projects.list() if p.title == title)


def test_push_twice_annotate_as_two_users_pull_and_agree(ls, tmp_path):
    db = tmp_path / "store.db"
    urls = _store(db)
    cb = load_codebook()
    labels_dir = tmp_path / "labels"
    # a classify run; issue 5's cause is the classifier's merged bin, no choice of the codebook
    probs = [0.91, 0.55, 0.62, 0.48, 0.77, 0.83, 0.35, 0.69, 0.58, 0.72]
    _predict(db, "clf-live-1", {u: {"stage": ("node_conversion", p), "symptom": ("crash", min(1.0, p + 0.1)),
                                    "cause": ("other" if i == 4 else "incompatibility", p)}
                                for i, (u, p) in enumerate(zip(urls, probs))})

    # 1. the default queue (most uncertain first), 8 issues; then the same again: nothing doubles
    res = _mine(ls, "labels", "push", "--label-studio", ls.url, "--project", PROJECT, "--db", str(db), "--limit", "8")
    assert res.returncode == 0, res.stderr
    assert "8 tasks added, 0 already there" in res.stdout and "created" in res.stdout
    res = _mine(ls, "labels", "push", "--label-studio", ls.url, "--project", PROJECT, "--db", str(db), "--limit", "8")
    assert res.returncode == 0 and "0 tasks added, 8 already there" in res.stdout, res.stdout + res.stderr
    admin = ls.client(ALICE)
    proj = _project(admin, PROJECT)
    tasks = admin.tasks.list(project=proj.id, fields="all")
    by_uncertainty = [u for _, u in sorted(zip(probs, urls))][:8]
    assert [t.data["url"] for t in tasks] == by_uncertainty
    # then a queue file of all ten: only the two missing ones are added
    queue = tmp_path / "queue.txt"
    queue.write_text("\n".join(urls) + "\n")
    res = _mine(ls, "labels", "push", "--label-studio", ls.url, "--project", PROJECT, "--db", str(db), "--queue", str(queue))
    assert res.returncode == 0 and "2 tasks added, 8 already there" in res.stdout, res.stdout + res.stderr
    tasks = _tasks(admin, proj.id)
    assert sorted(tasks) == sorted(urls) and len(list(admin.tasks.list(project=proj.id))) == 10
    assert proj.maximum_annotations == 2 and _project(admin, PROJECT).model_version == "clf-live-1"
    for url, t in tasks.items():
        (pred,) = t["predictions"]
        assert pred["model_version"] == "clf-live-1"
        got = {r["from_name"]: r["value"]["choices"][0] for r in pred["result"]}
        assert got["stage"] == "Node Conversion" and got["symptom"] == "Crash"
        # the merged bin is left open instead of becoming a choice Label Studio would drop
        assert ("cause" not in got) if url == urls[4] else (got["cause"] == "Incompatibility")
    assert tasks[urls[0]]["data"]["title"].startswith("ONNX export of bicubic")
    assert "torch.onnx.export(model" in tasks[urls[0]]["data"]["text"]

    # 2. a new model: its predictions are added to every task, the project pre-labels with it
    _predict(db, "clf-live-2", {u: {"stage": ("export", 0.6), "symptom": ("crash", 0.7), "cause": ("typo", 0.5)}
                                for u in urls})
    res = _mine(ls, "labels", "push", "--label-studio", ls.url, "--project", PROJECT, "--db", str(db), "--queue", str(queue))
    assert res.returncode == 0 and "0 tasks added, 10 already there" in res.stdout
    assert "10 added and 0 refreshed" in res.stdout, res.stdout
    tasks = _tasks(admin, proj.id)
    assert len(tasks) == 10 and _project(admin, PROJECT).model_version == "clf-live-2"
    assert all(sorted(p["model_version"] for p in t["predictions"]) == ["clf-live-1", "clf-live-2"] for t in tasks.values())

    # 3. two annotators, through the API the editor uses, in the editor's result format
    alice, bob = ls.client(ALICE), ls.client(BOB)
    A = {  # alice: urls 0-8 labelled (one with a note), url 9 skipped
        urls[0]: ({"stage": "Node Conversion", "symptom": "Crash", "cause": "Incompatibility",
                   "cause_subtype_incompatibility": "External"}, "opset 9 lacks bicubic"),
        urls[1]: ({"stage": "Node Conversion", "symptom": "Wrong Model", "cause": "Algorithmic Error"}, ""),
        urls[2]: ({"stage": "Load Model", "symptom": "Hang", "cause": "Others"}, ""),
        urls[3]: ({"stage": "Optimization", "symptom": "Wrong Model", "cause": "Tensor Shape Problem"}, ""),
        urls[4]: ({"stage": "Export", "symptom": "Crash", "cause": "Misconfiguration"}, ""),
        urls[5]: ({"stage": "Node Conversion", "symptom": "Wrong Model", "cause": "Typo"}, ""),
        urls[6]: ({"stage": "Node Conversion", "symptom": "Crash", "cause": "Incompatibility",
                   "cause_subtype_incompatibility": "Internal"}, ""),
        urls[7]: ({"stage": "Node Conversion", "symptom": "Wrong Model", "cause": "Type Problem",
                   "cause_subtype_type_problem": "Tensor"}, ""),
        urls[8]: ({"stage": "Optimization", "symptom": "Hang", "cause": "Algorithmic Error"}, ""),
    }
    # bob: agrees with alice but on three issues; url 2 comes below, url 8 skipped, url 9 labelled
    B = {u: (label, "") for u, (label, _) in A.items() if u not in (urls[2], urls[8])}
    B[urls[1]] = ({**A[urls[1]][0], "stage": "Validation"}, "")
    B[urls[5]] = ({**A[urls[5]][0], "symptom": "Crash"}, "")
    B[urls[7]] = ({**A[urls[7]][0], "cause_subtype_type_problem": "Node"}, "")
    B[urls[9]] = ({"stage": "Export", "symptom": "Bad Performance", "cause": "Others"}, "")
    for url, (label, note) in A.items():
        _submit(alice, proj.id, tasks[url], label, note)
    for url, (label, note) in B.items():
        _submit(bob, proj.id, tasks[url], label, note)
    # skips: the editor's Skip posts the current (here empty) result with was_cancelled
    alice.annotations.create(id=tasks[urls[9]]["id"], result=[], was_cancelled=True, **_ui_body(proj.id))
    bob.annotations.create(id=tasks[urls[8]]["id"], result=[], was_cancelled=True, **_ui_body(proj.id))
    # bob first says Incompatibility / Internal on url 2, then changes the cause to Type Problem / Node:
    # the editor PATCHes the annotation and leaves out the now hidden Incompatibility subtypes
    first = _submit(bob, proj.id, tasks[urls[2]], {"stage": "Load Model", "symptom": "Hang", "cause": "Incompatibility",
                                                   "cause_subtype_incompatibility": "Internal"})
    bob.annotations.update(first.id, result=[_choice("stage", "Load Model"), _choice("symptom", "Hang"),
                                             _choice("cause", "Type Problem"), _choice("cause_subtype_type_problem", "Node")],
                           lead_time=30.0)
    B[urls[2]] = ({"stage": "Load Model", "symptom": "Hang", "cause": "Type Problem", "cause_subtype_type_problem": "Node"}, "")

    # 4. pull: one file per annotator holding exactly their labels; skips reported, not imported
    res = _mine(ls, "labels", "pull", "--label-studio", ls.url, "--project", PROJECT, "--labels-dir", str(labels_dir))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in labels_dir.iterdir()) == ["alice.jsonl", "bob.m.jsonl"]
    assert f"alice skipped 1 task(s), not imported: {urls[9]}" in res.stderr
    assert f"bob.m skipped 1 task(s), not imported: {urls[8]}" in res.stderr
    assert "9 labels" in res.stdout and "(9 new, 0 unchanged)" in res.stdout

    def expected(side: dict) -> dict:
        out = {}
        for url, (label, note) in side.items():
            sub = next((v for k, v in label.items() if k.startswith("cause_subtype_")), "")
            cause = cb.resolve("cause", label["cause"], by="name")
            out[url] = (cb.resolve("stage", label["stage"], by="name"), cb.resolve("symptom", label["symptom"], by="name"),
                        cause, cb.resolve("cause_subtype", sub, by="name", cause=cause) if sub else "", note)
        return out

    for name, side, rater in (("alice.jsonl", A, "alice"), ("bob.m.jsonl", B, "bob.m")):
        recs = read_records(labels_dir / name)
        assert len(recs) == len(side) == len({r["url"] for r in recs})
        assert {r["url"]: (r["stage"], r["symptom"], r["cause"], r["cause_subtype"], r["note"]) for r in recs} == expected(side)
        assert {r["rater"] for r in recs} == {rater} and {r["codebook_version"] for r in recs} == {cb.version}
    # pulling again writes nothing twice
    before = {p.name: p.read_bytes() for p in labels_dir.iterdir()}
    res = _mine(ls, "labels", "pull", "--label-studio", ls.url, "--project", PROJECT, "--labels-dir", str(labels_dir))
    assert res.returncode == 0 and "(0 new, 9 unchanged)" in res.stdout
    assert {p.name: p.read_bytes() for p in labels_dir.iterdir()} == before

    # 5. agreement between the two annotators, as `mine agree` computes it (Cohen's kappa, scikit-learn)
    from sklearn.metrics import cohen_kappa_score

    res = run_mine("agree", str(labels_dir / "alice.jsonl"), str(labels_dir / "bob.m.jsonl"), "--format", "json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    a, b = expected(A), expected(B)
    both = [u for u in urls if u in a and u in b]
    assert got["n"] == len(both) == 8
    for i, dim in enumerate(("stage", "symptom", "cause")):
        kappa = cohen_kappa_score([a[u][i] for u in both], [b[u][i] for u in both])
        assert got["dimensions"][dim]["kappa"] == pytest.approx(kappa, abs=1e-4)
    assert 0 < got["dimensions"]["stage"]["kappa"] < 1
    # and adjudication starts from exactly the issues they disagree on
    from pipeline.labelling.sessions import adjudication_session

    session = adjudication_session(labels_dir / "alice.jsonl", labels_dir / "bob.m.jsonl", "carol", db=db,
                                   labels_dir=tmp_path / "adj")
    assert set(session.queue) == {u for u in both if a[u][:4] != b[u][:4]}

    # 6. the server's own exports through `mine labels import`: JSON names two annotators (refused
    # without --annotator), JSON-MIN (flat rows) now imports; both give the pulled labels
    for fmt in ("JSON", "JSON_MIN"):
        data = b"".join(admin.projects.exports.download_sync(proj.id, export_type=fmt, download_all_tasks=True))
        f = tmp_path / f"export-{fmt}.json"
        f.write_bytes(data)
        res = run_mine("labels", "import", str(f), "--rater", "x", "--labels-dir", str(tmp_path / "imp"))
        assert res.returncode == 2 and "annotations by 2 annotators" in res.stderr, res.stderr
        alice_id = str(admin.users.whoami().id)
        path, n, _, skipped = import_export(f, f"alice-{fmt.lower()}", cb, tmp_path / "imp", annotator=alice_id)
        assert n == 9 and read_labels(path).set_index("url")[["stage", "symptom", "cause"]].to_dict() == \
            read_labels(labels_dir / "alice.jsonl").set_index("url")[["stage", "symptom", "cause"]].to_dict()
        assert skipped == ([urls[9]] if fmt == "JSON" else [])  # JSON-MIN leaves cancelled annotations out


def test_clear_errors_for_wrong_token_url_project_and_server_down(ls, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # bound, never listening: connections are refused
        cases = [
            (run_mine("labels", "pull", "--label-studio", ls.url, "--project", "x", env={"LABEL_STUDIO_API_KEY": "0" * 40}),
             "refused the token in LABEL_STUDIO_API_KEY (HTTP 401)"),
            (_mine(ls, "labels", "pull", "--label-studio", ls.url, "--project", "No such project"),
             "no project named 'No such project'"),
            (_mine(ls, "labels", "pull", "--label-studio", ls.url + "/not-here", "--project", "x"),
             "no Label Studio API here (HTTP 404"),
            (_mine(ls, "labels", "push", "--label-studio", dead, "--db", str(tmp_path / "x.db")),
             "cannot connect"),
            (run_mine("labels", "push", "--label-studio", ls.url, env={"LABEL_STUDIO_API_KEY": ""}),
             "LABEL_STUDIO_API_KEY is not set"),
            (_mine(ls, "labels", "push", "--label-studio", "localhost:8080"), "not an http(s) URL"),
        ]
    for res, needle in cases:
        assert res.returncode == 2 and needle in res.stderr, (needle, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_a_personal_access_token_works_too(ls, tmp_path):
    """Label Studio's default kind of token (a JWT refresh token the SDK exchanges) as well as legacy ones."""
    pat = ls.client(BOB).tokens.create().token
    assert pat.count(".") == 2  # a JWT, not the legacy token
    res = run_mine("labels", "pull", "--label-studio", ls.url, "--project", "No such project",
                   env={"LABEL_STUDIO_API_KEY": pat})
    assert res.returncode == 2 and "no project named 'No such project'" in res.stderr, res.stderr
    assert pat not in res.stdout + res.stderr


CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's Chromium at /usr/bin/chromium (.ci/install-browser.sh)")
def test_label_studio_labelling_view_of_a_pushed_task(ls, tmp_path):
    """Label Studio's own editor on a pushed task: the traceback keeps its indentation, Incompatibility
    without a subtype is refused, and what the editor then submits comes back through `pull`."""
    sync_api = pytest.importorskip("playwright.sync_api")
    db = tmp_path / "store.db"
    urls = _store(db)
    _predict(db, "clf-ui", {urls[0]: {"stage": ("node_conversion", 0.8), "symptom": ("crash", 0.9), "cause": ("other", 0.3)}})
    queue = tmp_path / "queue.txt"
    queue.write_text(urls[0] + "\n")
    project = "Editor check"
    res = _mine(ls, "labels", "push", "--label-studio", ls.url, "--project", project, "--db", str(db), "--queue", str(queue))
    assert res.returncode == 0, res.stderr
    admin = ls.client(ALICE)
    proj = _project(admin, project)
    (task,) = _tasks(admin, proj.id).values()
    posted = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        ctx = browser.new_context(viewport={"width": 1600, "height": 1100})
        outside = []
        ctx.route("**/*", lambda r: r.continue_() if r.request.url.startswith(ls.url) else (outside.append(r.request.url), r.abort()))
        page = ctx.new_page()
        page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/annotations" in r.url else None)
        page.goto(ls.url + "/user/login/")
        page.fill("input[name=email]", ALICE)
        page.fill("input[name=password]", ls.users[ALICE].password)
        page.click("button[type=submit]")
        page.wait_for_load_state("networkidle")
        page.goto(f"{ls.url}/projects/{proj.id}/data?task={task['id']}")
        text = page.locator(".lsf-richtext__container").first
        text.wait_for()
        # the issue text's View keeps white space: the traceback's frames stay indented
        assert text.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
        assert '\n  File "repro.py", line 3, in <module>\n    torch.onnx.export(' in text.inner_text()
        # the model's stage and symptom are pre-selected; its merged cause is not offered
        # (the editor applies the prediction once the task has loaded: wait for it; in about one
        # run of three under load the data manager's first opening of a new project shows the task
        # without its predictions, and opening it again does)
        preselected = """() => ['Node Conversion', 'Crash'].every(n => document.querySelector(`input[name="${n}"]`)?.checked)"""
        try:
            page.wait_for_function(preselected, timeout=15000)
        except sync_api.TimeoutError:
            page.reload()
            page.wait_for_function(preselected, timeout=20000)
        assert not page.locator('input[name="Incompatibility"]').is_checked()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "label-studio-task.png"))
        # Incompatibility without a subtype: the editor refuses to submit
        page.locator('input[name="Incompatibility"]').check()
        page.get_by_role("button", name="Submit").click()
        page.get_by_text("Choose a subtype of Incompatibility").wait_for()
        page.wait_for_timeout(500)
        assert posted == []
        page.get_by_role("button", name="OK").click()
        page.locator('input[name="External"]').check()
        page.get_by_role("button", name="Submit").click()
        page.wait_for_timeout(300)
        for _ in range(50):
            if admin.tasks.get(str(task["id"])).total_annotations:
                break
            page.wait_for_timeout(200)
        browser.close()
    assert len(posted) == 1 and not outside
    res = _mine(ls, "labels", "pull", "--label-studio", ls.url, "--project", project, "--labels-dir", str(tmp_path / "labels"))
    assert res.returncode == 0, res.stderr
    (rec,) = read_records(tmp_path / "labels" / "alice.jsonl")
    assert (rec["url"], rec["stage"], rec["symptom"], rec["cause"], rec["cause_subtype"]) == \
        (urls[0], "node_conversion", "crash", "incompatibility", "external")
