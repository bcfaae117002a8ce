"""Shared test helpers: run the real `mine` CLI in a subprocess, locate ../shared data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.paths import PROJECT_ROOT, shared_dir


def run_mine(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m pipeline ARGS`` as a user would run it; returns the finished process."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=cwd or PROJECT_ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def paper_dir() -> Path:
    """``../shared/paper``, or skip the test with the reason."""
    p = shared_dir() / "paper"
    if not (p / "FailureAnalysis.xlsx").is_file():
        pytest.skip(f"study spreadsheets not found at {p} (../shared is only on project machines and CI)")
    return p


def shared_issues() -> Path:
    """``../shared/github-issues`` (real issue text), or skip the test with the reason."""
    p = shared_dir() / "github-issues"
    if not (p / "study-issues.jsonl").is_file() or not (p / "converter-issues.jsonl").is_file():
        pytest.skip(f"real issue texts not found at {p} (../shared is only on project machines and CI)")
    return p
