"""CLI commands of the labelling stage (thin wrappers over library calls)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from pipeline.paths import labels_dir as default_labels_dir

# messages quote user data (paths, project names like "[v2]"): never read as markup
_out = Console(highlight=False, soft_wrap=True, markup=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)


def _labels_dir(path: Path | None) -> Path:
    """--labels-dir, or the project's labels/ folder (MINE_LABELS_DIR overrides)."""
    return path if path is not None else default_labels_dir()


def _serve(session, host: str, port: int) -> None:
    from pipeline.labelling.app import create_app
    from pipeline.labelling.serve import LOCAL_HOSTS, allowed_hosts_for, bind, serve, url_of

    if host not in LOCAL_HOSTS:
        _err.print(f"[bold yellow]warning:[/] listening on {host}: the labelling tool has no login; "
                   "anyone who can reach this address can read issues and write labels as "
                   f"{session.rater}.", markup=True)
    sock = bind(host, port)
    app = create_app(session, allowed_hosts=allowed_hosts_for(host))
    _out.print(f"{session.queue_note}; {len(session.queue)} issues; labels go to {session.store.path}")
    _out.print(f"Labelling tool for {session.rater}: {url_of(sock)}  (Ctrl-C to stop)")
    try:
        serve(app, sock)
    except KeyboardInterrupt:
        pass


def label(
    rater: str = typer.Option(..., "--rater", help="Your name; labels go to `<labels-dir>/<rater>.jsonl`."),
    queue: Path | None = typer.Option(None, "--queue", help="File of issue URLs, one per line, '#' comments allowed "
                                      "(written by `mine sample`). Default: every filtered issue in the store you "
                                      "have not labelled, most uncertain first once the classifier has run."),
    db: Path | None = typer.Option(None, "--db", help="The store (default data/mine.db)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Anything but localhost is "
                             "reachable by others, and there is no login."),
    blind: bool = typer.Option(False, "--blind", help="Hide other raters' labels and classifier suggestions."),
    labels_dir: Path | None = typer.Option(None, "--labels-dir", help="Folder of the label files (default labels/)."),
) -> None:
    """Label issues in a local web page, keyboard first (press ? there for the keys)."""
    from pipeline.labelling.sessions import label_session

    session = label_session(rater, queue_file=queue, db=db, labels_dir=_labels_dir(labels_dir), blind=blind)
    _serve(session, host, port)


def adjudicate(
    file_a: Path = typer.Argument(..., help="First label file (CSV or JSONL)."),
    file_b: Path = typer.Argument(..., help="Second label file (CSV or JSONL)."),
    rater: str = typer.Option(..., "--rater", help="The adjudicator; decisions go to `<labels-dir>/<rater>.jsonl`."),
    db: Path | None = typer.Option(None, "--db", help="The store (default data/mine.db)."),
    port: int = typer.Option(8765, "--port", help="Port to listen on (0: any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (there is no login)."),
    blind: bool = typer.Option(False, "--blind", help="Hide other raters' labels and classifier suggestions."),
    labels_dir: Path | None = typer.Option(None, "--labels-dir", help="Folder of the label files (default labels/)."),
) -> None:
    """Settle the issues two label files disagree on, both labels side by side."""
    from pipeline.labelling.sessions import adjudication_session

    session = adjudication_session(file_a, file_b, rater, db=db, labels_dir=_labels_dir(labels_dir), blind=blind)
    _serve(session, host, port)


labels_app = typer.Typer(help="Label Studio: live push/pull of a project, file export/import.", no_args_is_help=True)


@labels_app.command("export")
def labels_export(
    fmt: str = typer.Option("label-studio", "--format", help="Export format (only label-studio)."),
    queue: Path | None = typer.Option(None, "--queue", help="File of issue URLs (default: the store's filtered issues)."),
    labels: Path | None = typer.Option(None, "--labels", help="Label file (CSV/JSONL) whose labels become "
                                       "pre-annotations (default: the classifier's stored predictions)."),
    db: Path | None = typer.Option(None, "--db", help="The store (default data/mine.db)."),
    out: Path = typer.Option(Path("label-studio-tasks.json"), "--out", help="Tasks JSON to write."),
    config: Path | None = typer.Option(None, "--config", help="Labelling config XML to write "
                                       "(default: beside --out, `<out>.config.xml`)."),
) -> None:
    """Write Label Studio tasks (with pre-annotations) and the matching labelling config; print the config."""
    from pipeline.codebook import load_codebook
    from pipeline.errors import UserError
    from pipeline.labelling.labelstudio import export_tasks, labeling_config
    from pipeline.labelling.queue import filtered_urls, read_queue_file
    from pipeline.label_files.files import read_labels
    from pipeline.store.db import open_store

    if fmt != "label-studio":
        raise UserError(f"--format {fmt!r}: only 'label-studio' is supported")
    cb = load_codebook()
    df = read_labels(labels, cb) if labels else None
    conn = open_store(db)
    try:
        if queue:
            urls = read_queue_file(queue)
        elif df is not None:
            urls = df["url"].tolist()
        else:
            urls, note = filtered_urls(conn)
            _err.print(note)
        if not urls:
            raise UserError("nothing to export: no --queue, no --labels and no filtered issues in the store")
        tasks = export_tasks(urls, conn, cb, df)
    finally:
        conn.close()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    xml = labeling_config(cb)
    cfg = config or out.with_suffix(".config.xml")
    cfg.write_text(xml, encoding="utf-8")
    _out.print(xml, markup=False)
    n_pre = sum(1 for t in tasks if t.get("predictions"))
    _err.print(f"wrote {len(tasks)} tasks ({n_pre} with pre-annotations) to {out} and the labelling config to {cfg}")


@labels_app.command("import")
def labels_import(
    file: Path = typer.Argument(..., help="Label Studio export: JSON or JSON-MIN (Export -> JSON)."),
    rater: str = typer.Option(..., "--rater", help="Whose labels these are: appended to `<labels-dir>/<rater>.jsonl`."),
    annotator: str | None = typer.Option(None, "--annotator", help="Label Studio user id (or e-mail) whose "
                                         "annotations to take, when the export holds several annotators' work."),
    labels_dir: Path | None = typer.Option(None, "--labels-dir", help="Folder of the label files (default labels/)."),
) -> None:
    """Append one annotator's annotations from a Label Studio export to a label file (all or nothing)."""
    from pipeline.codebook import load_codebook
    from pipeline.labelling.labelstudio_import import import_export
    from pipeline.labelling.storage import validate_rater

    path, n, empty, skipped = import_export(file, validate_rater(rater), load_codebook(), _labels_dir(labels_dir),
                                            annotator)
    _out.print(f"appended {n} labels to {path}" + (f"; {empty} tasks had no annotation" if empty else ""))
    _report_skipped(rater, skipped)


def _report_skipped(rater: str, urls: list[str]) -> None:
    if urls:
        _err.print(f"{rater} skipped {len(urls)} task(s), not imported: " + ", ".join(sorted(urls)))


@labels_app.command("push")
def labels_push(
    label_studio: str = typer.Option(..., "--label-studio", help="Address of the Label Studio server, e.g. "
                                     "http://localhost:8080. The token comes from $LABEL_STUDIO_API_KEY."),
    project: str | None = typer.Option(None, "--project", help="Project to create or update "
                                       "(default: 'Converter failures')."),
    queue: Path | None = typer.Option(None, "--queue", help="File of issue URLs (from `mine sample`). Default: "
                                      "the store's filtered issues, most uncertain first once `mine classify` ran."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Push only the first N issues of the queue."),
    overlap: int = typer.Option(2, "--overlap", min=1, help="Annotators per task, for a new project (2: every "
                                "issue labelled twice, so agreement can be computed)."),
    db: Path | None = typer.Option(None, "--db", help="The store (default data/mine.db)."),
) -> None:
    """Create or update a Label Studio project: config from the codebook, tasks, model pre-annotations.

    Idempotent: pushing again adds only issues the project lacks and refreshes the predictions.
    """
    from pipeline.codebook import load_codebook
    from pipeline.errors import UserError
    from pipeline.labelling.labelstudio_sync import DEFAULT_PROJECT, connect, push
    from pipeline.labelling.queue import default_queue, read_queue_file
    from pipeline.store.db import open_store

    cb = load_codebook()
    project = project or DEFAULT_PROJECT
    server = connect(label_studio)
    conn = open_store(db)
    try:
        if queue is not None:
            urls, note = read_queue_file(queue), f"queue: {queue}"
        else:
            urls, note = default_queue(conn, set())
        urls = urls[:limit] if limit else urls
        if not urls:
            raise UserError(f"{db or 'the store'}: no issues to push (crawl first, or pass --queue FILE)")
        _err.print(f"{note}; pushing {len(urls)} issues to {server.url} project {project!r}")
        res = push(server, urls, conn, cb, project=project, overlap=overlap, progress=True)
    finally:
        conn.close()
    state = "created" if res.created else ("labelling config updated" if res.config_updated else "existing")
    _out.print(f"project {res.project!r} (id {res.project_id}, {state}) at {res.url}: {res.added} tasks added, "
               f"{res.present} already there")
    if res.model_id:
        _out.print(f"pre-annotations from model {res.model_id}: {res.new_with_prediction} with the new tasks, "
                   f"{res.predictions_added} added and {res.predictions_updated} refreshed on existing ones; "
                   f"{len(res.without_prediction)} of the {len(urls)} issues have none")
    else:
        _out.print("no pre-annotations: the store holds no predictions (run `mine classify` first)")


@labels_app.command("pull")
def labels_pull(
    label_studio: str = typer.Option(..., "--label-studio", help="Address of the Label Studio server. The token "
                                     "comes from $LABEL_STUDIO_API_KEY."),
    project: str = typer.Option(..., "--project", help="The project to pull annotations from."),
    labels_dir: Path | None = typer.Option(None, "--labels-dir", help="Folder of the label files (default labels/)."),
) -> None:
    """Write each annotator's annotations to `<labels-dir>/<annotator>.jsonl`, ready for `mine agree`.

    Appends only labels that changed since the last pull; skipped tasks are reported, not imported.
    """
    from pipeline.codebook import load_codebook
    from pipeline.labelling.labelstudio_sync import connect, pull

    res = pull(connect(label_studio), project, load_codebook(), _labels_dir(labels_dir))
    if not res.written and not res.pulled.skipped:
        _out.print(f"project {project!r} at {res.url}: no annotations yet")
        return
    for rater, (path, new, same) in res.written.items():
        _out.print(f"{rater} ({res.annotators.get(rater) or 'no e-mail'}): {new + same} labels in {path} "
                   f"({new} new, {same} unchanged)")
    for rater, urls in sorted(res.pulled.skipped.items()):
        _report_skipped(rater, urls)
    if res.pulled.unannotated:
        _out.print(f"{res.pulled.unannotated} tasks have no annotation yet")
    files = [str(p) for p, _, _ in res.written.values()]
    if len(files) >= 2:
        _out.print(f"next: mine agree {' '.join(files)}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the `mine` app: label, adjudicate, labels export/import/push/pull."""
    app.command("label")(label)
    app.command("adjudicate")(adjudicate)
    app.add_typer(labels_app, name="labels")
