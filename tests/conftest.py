"""Shared pytest fixtures. Keep each fixture small and documented; add new ones below."""

from __future__ import annotations

import pytest


@pytest.fixture
def emulator(request):
    """A running GitHub emulator (real HTTP server on 127.0.0.1, free port), stopped afterwards.

    Defaults to 60 issues per repository, seed 0, no faults. Override any
    ``EmulatorConfig`` field with indirect parametrization::

        @pytest.mark.parametrize("emulator", [{"rate_limit": 3}], indirect=True)
        def test_x(emulator): ...
    """
    from pipeline.emulator.server import EmulatorConfig, run_emulator

    overrides = getattr(request, "param", None) or {}
    cfg = EmulatorConfig(**{"issues": 60, **overrides})
    with run_emulator(cfg) as emu:
        yield emu


@pytest.fixture(scope="session")
def study_store(tmp_path_factory):
    """A store holding the study's 150 issues with real text, crawled from the emulator serving
    ``../shared/github-issues/study-issues.jsonl``, and the titles of all 200 (skipped without ../shared).

    Tests must not write to it (copy it first)."""
    from pipeline.study_store import build_study_store
    from tests.helpers import paper_dir, shared_issues

    paper_dir()
    shared_issues()
    db = tmp_path_factory.mktemp("study") / "study.db"
    built = build_study_store(db, log=lambda m: None)
    assert built.crawled == 150 and built.titles >= 200
    return db
