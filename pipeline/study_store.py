"""The study's training store: the real texts of the study's labelled issues, as a crawl brings them.

``python -m pipeline.study_store DB`` (``make study-store``) builds a store holding what the
project knows of the 200 issues of ``labels/study.csv`` without reaching GitHub:

1. the bundled GitHub emulator (127.0.0.1, in this process) serves the real issues of
   ``../shared/github-issues/study-issues.jsonl`` as the study sampled them (closed, relevant,
   with a fix linked) and nothing else;
2. ``mine crawl`` (the real crawler) stores their titles, bodies and comments;
3. ``mine import-study`` records the titles of all 200 from the study's spreadsheet, so the 50
   issues without public text are still known by their title.

This is the store ``mine train`` fits the shipped model on (``make model``), the store
``mine evaluate`` and ``mine validate-estimates`` measure on, and the one the reproduction test
rebuilds. The shared files are read, never copied into the repository.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import UserError
from pipeline.paths import shared_dir


@dataclass
class StudyStore:
    """What :func:`build_study_store` put into the store."""

    db: Path
    crawled: int
    titles: int


def study_corpus(shared: Path | None = None) -> Path:
    """``../shared/github-issues/study-issues.jsonl``; :class:`UserError` when absent."""
    p = (shared or shared_dir()) / "github-issues" / "study-issues.jsonl"
    if not p.is_file():
        raise UserError(f"{p}: the study issues' texts are not here (../shared is only on project machines and CI)")
    return p


def build_study_store(db: Path | str, shared: Path | str | None = None, *, log=print) -> StudyStore:
    """Serve the shared study issues from the emulator, crawl them into ``db``, record the study's titles."""
    from pipeline.classify.titles import record_titles
    from pipeline.crawl.client import GitHubClient
    from pipeline.crawl.crawler import crawl
    from pipeline.emulator.server import EmulatorConfig, run_emulator
    from pipeline.label_files.study_import import import_study
    from pipeline.sources import load_sources
    from pipeline.store.db import open_store

    shared = Path(shared) if shared else shared_dir()
    corpus = study_corpus(shared)
    paper = shared / "paper"
    if not (paper / "FailureAnalysis.xlsx").is_file():
        raise UserError(f"{paper}: the study's spreadsheet (titles of the 200 issues) is not here")
    conn = open_store(db)
    try:
        with run_emulator(EmulatorConfig(relevant_corpus=(str(corpus),), synthetic=False, host="127.0.0.1", port=0)) as emu:
            summary = crawl(conn, load_sources(), GitHubClient(emu.url), concurrency=4)
        if summary.errors or summary.partial:
            raise UserError(f"crawling the study issues from the emulator failed: {'; '.join(summary.errors) or 'partial'}")
        crawled = int(conn.execute("SELECT COUNT(*) FROM issues WHERE is_pull = 0").fetchone()[0])
        titles = record_titles(conn, import_study(paper, write=False).titles.items())
    finally:
        conn.close()
    log(f"{db}: {crawled} study issues crawled from the emulator (real text), {titles} titles recorded")
    return StudyStore(Path(db), crawled, titles)


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.study_store DB [SHARED_DIR]``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip().splitlines()[0] + "\nusage: python -m pipeline.study_store DB [SHARED_DIR]")
        return 0 if args else 2
    try:
        build_study_store(args[0], args[1] if len(args) > 1 else None)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
