"""``make demo`` / ``python -m pipeline.demo``: the whole pipeline on a fresh clone, offline, in a few minutes.

1. The study's tables (Tables 8, 9, 10, 14) from the committed labels, with Wilson intervals.
2. The bundled GitHub emulator is started on 127.0.0.1 (in this process) and ``mine nightly``
   runs against it into ``data/demo/``: crawl, filter, train the classifier on the study's
   labels, classify, estimate the shares with intervals, write the HTML report.
3. A few issues are touched upstream and the nightly run repeated: it finds exactly those.

Training text: the study's labels are committed, its issue titles are not (they are the
authors' data, read from ``../shared/paper`` when present). Without ``../shared`` there is
nothing to train on, so the demo says so and reports the human-labelled tables only.
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
    from pipeline.classify.data import default_label_files
    from pipeline.emulator.server import EmulatorConfig, run_emulator
    from pipeline.label_files.files import read_many
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

    have_titles = (shared_dir() / "paper" / "FailureAnalysis.xlsx").is_file()
    if not have_titles:
        console.print(f"[yellow]note:[/] {shared_dir() / 'paper'} is absent: the study's issue titles (the only "
                      "training text) are not in the repository, so the classifier cannot be trained and the "
                      "predicted part (estimated shares of crawled issues) is skipped. The crawl, filter, change "
                      "summary and report still run.")
    validation = None
    if have_titles:
        from pipeline.report.validate import study_titles, validate_estimates

        console.rule("Check of the estimator: train on one converter's labels, estimate the other's shares")
        val = validate_estimates(study, study_titles(), bootstrap=300)
        validation = val.summary
        errs = ", ".join(f"{m} {e:.1f}" for m, e in sorted(validation["mean_abs_error_pp"].items(), key=lambda kv: kv[1]))
        console.print(f"mean absolute error of a share, percentage points: {errs}; gold share inside the 95% interval "
                      f"of {validation['chosen_method']}: {validation['coverage'][validation['chosen_method']]:.0%}")
    if demo.exists():
        shutil.rmtree(demo)  # a fresh store each time: the demo's emulator starts from the same data
    db, out = demo / "mine.db", demo / "report"

    console.rule("2. Nightly run against the bundled GitHub emulator on 127.0.0.1")
    with run_emulator(EmulatorConfig(seed=0, issues=150, host="127.0.0.1", port=0)) as emu:
        console.print(f"emulator at {emu.url}")
        res = run_nightly(db, out, api_url=emu.url, bootstrap=500, validation=validation,
                          log=lambda m: console.print(m, markup=False))
        for line in change_lines(res):
            console.print(line, markup=False)
        if res.source != "gold":
            import json

            from pipeline.report.tables import Report

            doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
            est = Report(doc["n"], doc["converters"], doc["tables"], doc["notes"], doc["source"], doc["columns"])
            console.print("Estimated shares over every filtered issue (corrected for classifier error, 95% intervals):")
            print_report(est, console, tables=["stage", "symptom"])
            console.print(f"{len(res.new)} new issues, {res.filtered} kept by the filter; the first few kept, as predicted:",
                          highlight=False)
            for d in [d for d in res.new if d["kept"]][:5]:
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
