"""``make demo`` / ``python -m pipeline.demo``: the whole pipeline on a fresh clone, offline, in a few minutes.

1. The study's tables (Tables 8, 9, 10, 14) from the committed labels, with Wilson intervals.
2. With ``../shared`` present: a check of the estimator on real text (fit on one converter's
   study issues, estimate the other's shares; ``mine validate-estimates``) over a store the
   emulator and the crawler fill with the study issues' real text (:mod:`pipeline.study_store`).
3. The bundled GitHub emulator is started on 127.0.0.1 (in this process) and ``mine nightly``
   runs against it into ``data/demo/``: crawl, filter, classify with the shipped model,
   estimate the shares with intervals, write the HTML report. With ``../shared`` the emulator
   serves the real issues of ``../shared/github-issues`` (the study's, as the study sampled
   them, and ~630 more of six converters) and the predictions read their full text; without
   it, its synthetic issues.
4. A few issues are touched upstream and the nightly run repeated: it finds exactly those.

The classifier is the model shipped in the package (``pipeline/classify/shipped``, trained by
``mine train`` on ``labels/study.csv`` and the study issues' real text; no issue text in it),
so a fresh clone predicts without ``../shared``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from rich.console import Console  # noqa: E402

DEMO_DIR = Path("data/demo")  # under the project root; MINE_DEMO_DIR overrides


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    from pipeline.emulator.server import EmulatorConfig, run_emulator
    from pipeline.label_files.files import default_label_files, read_many
    from pipeline.nightly import change_lines, issue_line, run_nightly
    from pipeline.paths import PROJECT_ROOT, shared_dir
    from pipeline.report.estimate import add_wilson
    from pipeline.report.render import print_report
    from pipeline.report.tables import build_report

    # wide enough for the tables when the output is a file or a pipe (make demo | tee ...)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
    t0 = time.monotonic()
    demo = Path(os.environ.get("MINE_DEMO_DIR") or PROJECT_ROOT / DEMO_DIR)
    console.rule("1. The study's tables from the committed labels (human labels, Wilson 95% intervals)")
    study = read_many(default_label_files())
    rep = add_wilson(build_report(study))
    print_report(rep, console, tables=["stage", "symptom", "cause_binned", "cause_x_symptom"])

    issues_dir = shared_dir() / "github-issues"
    have_shared = (shared_dir() / "paper" / "FailureAnalysis.xlsx").is_file() and (issues_dir / "study-issues.jsonl").is_file()
    if demo.exists():
        shutil.rmtree(demo)  # a fresh store each time: the demo's emulator starts from the same data
    demo.mkdir(parents=True)
    db, out = demo / "mine.db", demo / "report"
    validation = None
    if have_shared:
        validation = _estimator_check(console, study, demo / "study.db")
        from contextlib import closing

        from pipeline.store.db import connect, copy_embeddings

        with closing(connect(db)) as conn:  # the nightly store reads the study issues' texts again: embedded once
            copy_embeddings(conn, demo / "study.db")
    else:
        console.print(f"[yellow]note:[/] {shared_dir()} is absent: the emulator serves synthetic issues, and the "
                      "estimator check on the study's real issues (which needs their text) is skipped. The shipped "
                      "model classifies them.")

    console.rule("2. Nightly run against the bundled GitHub emulator on 127.0.0.1")
    if have_shared:
        corpus = tuple(str(p) for p in [issues_dir / "converter-issues.jsonl"] if p.is_file())
        cfg = EmulatorConfig(seed=0, corpus=corpus, relevant_corpus=(str(issues_dir / "study-issues.jsonl"),),
                             synthetic=False, host="127.0.0.1", port=0)
        what = "the real issues of ../shared/github-issues (the study's as the study sampled them, and the others as they are)"
    else:
        cfg = EmulatorConfig(seed=0, issues=150, host="127.0.0.1", port=0)
        what = "synthetic issues"
    with run_emulator(cfg) as emu:
        console.print(f"emulator at {emu.url}, serving {what}")
        res = run_nightly(db, out, api_url=emu.url, bootstrap=500, validation=validation,
                          log=lambda m: console.print(m, markup=False))
        for line in change_lines(res):
            console.print(line, markup=False)
        if res.source != "gold":
            import json

            from pipeline.report.tables import Report

            doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
            est = Report(doc["n"], doc["converters"], doc["tables"], doc["notes"], doc["source"], doc["columns"])
            console.print("Shares over every filtered issue (human labels where they exist, the rest estimated "
                          "from the classifier and corrected for its errors; 95% intervals):")
            print_report(est, console, tables=["stage", "symptom"])
            console.print(f"{len(res.new)} new issues, {res.filtered} kept by the filter; the first few kept, as predicted:",
                          highlight=False)
            labelled = set(study["url"])
            for d in [d for d in res.new if d["kept"] and d["url"] not in labelled][:5]:
                console.print(issue_line(d), markup=False)

        console.rule("3. Three issues change upstream; the next nightly run finds exactly those")
        touched = emu.touch("onnx/tensorflow-onnx", 3)
        again = run_nightly(db, out, api_url=emu.url, bootstrap=500, validation=validation,
                            log=lambda m: console.print(m, markup=False))
        for line in change_lines(again):
            console.print(line, markup=False)
        for d in again.updated:
            console.print(issue_line(d), markup=False)
        found = sorted(int(d["url"].rsplit("/", 1)[1]) for d in again.updated)
        console.print(f"touched {sorted(touched)}, reported {found}", highlight=False)

    console.print(f"done in {time.monotonic() - t0:.0f}s. HTML report:")
    console.print(str(out / "report.html"), markup=False, highlight=False, soft_wrap=True)
    return max(res.exit_code, again.exit_code)


def _estimator_check(console, study, db: Path) -> dict:
    """``mine validate-estimates`` on the study issues' real text; returns its summary (shown in the HTML)."""
    from pipeline.report.validate import validate_estimates
    from pipeline.store.db import open_store
    from pipeline.study_store import build_study_store

    console.rule("Check of the estimator on real text: fit on one converter's study issues, estimate the other's shares")
    build_study_store(db, log=lambda m: console.print(m, markup=False))
    conn = open_store(db)
    try:
        val = validate_estimates(conn, study, bootstrap=300).summary
    finally:
        conn.close()
    chosen = val["chosen_method"]
    for name, s in val["settings"].items():
        text, cal = name.split("/")
        errs = ", ".join(f"{m} {e:.1f}" for m, e in sorted(s["mean_abs_error_pp"].items(), key=lambda kv: kv[1]))
        console.print(f"{text} text ({cal} calibration): mean absolute error of a share, percentage points: {errs}; "
                      f"gold inside the 95% interval of {chosen}: {s['coverage'][chosen]:.0%}")
    return val


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
