"""The scheduled workflow (.github/workflows/nightly.yml): valid, on the README's schedule, loud when a fetch fails."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from pipeline.paths import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "nightly.yml"


def _steps() -> dict[str, dict]:
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return {s.get("name", s.get("uses", "")): s for s in doc["jobs"]["nightly"]["steps"]}


def test_workflow_runs_mine_nightly_on_the_readme_schedule():
    doc = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as True
    cron = triggers["schedule"][0]["cron"]
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert any(line.startswith(cron + " ") and "mine nightly" in line for line in readme.splitlines())
    run = _steps()["mine nightly"]["run"]
    assert "mine nightly --db data/mine.db --out data/nightly" in run and '"$code" = 3' in run


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is needed to run the step's script")
def test_failed_fetch_of_the_study_spreadsheets_fails_the_step_with_an_error(tmp_path):
    """The artifact clone cannot succeed here (no network): a `git` that fails as an offline clone does
    stands in for it, and the step must stop with a GitHub error annotation rather than carry on."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    git = bindir / "git"
    git.write_text("#!/bin/sh\necho \"fatal: unable to access 'https://github.com/...': Could not resolve host\" >&2\nexit 128\n")
    git.chmod(0o755)
    work = tmp_path / "checkout"
    work.mkdir()
    script = _steps()["Study spreadsheets (training titles)"]["run"]
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=work, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"})
    assert proc.returncode != 0
    assert "::error" in proc.stdout and "could not clone" in proc.stdout
    assert not (tmp_path / "shared" / "paper").exists()
