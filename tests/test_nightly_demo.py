"""`python -m pipeline.demo` (make demo) runs offline end to end, without ../shared and with it."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipeline.paths import PROJECT_ROOT, shared_dir
from tests.helpers import paper_dir, shared_issues


def _demo(tmp_path, shared: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MINE_SHARED_DIR": shared, "MINE_DEMO_DIR": str(tmp_path / "demo")}
    proc = subprocess.run([sys.executable, "-m", "pipeline.demo"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "148 (74%)" in out                      # Table 8 from the committed labels
    m = re.search(r"touched \[([\d, ]+)\], reported \[([\d, ]+)\]", out)
    assert m and m.group(1) == m.group(2)
    html = out.strip().splitlines()[-1]
    assert html.endswith("report.html") and os.path.isfile(html)
    return out


def test_demo_without_shared_data_predicts_with_the_shipped_model(tmp_path):
    """A fresh clone: the shipped model classifies the emulator's synthetic issues; estimates with intervals."""
    out = _demo(tmp_path, str(tmp_path / "no-shared"))
    assert "is absent" in out and "synthetic issues" in out
    assert "Shares over every filtered issue" in out and "%]" in out  # estimated shares with intervals
    assert "classifier: the shipped model" in out
    assert re.search(r"stage: (Node Conversion|Load Model|Optimization|Not distinguishable)", out)  # predicted issues


@pytest.mark.slow
def test_demo_with_shared_data_serves_real_issues_and_predicts_on_full_text(tmp_path):
    paper_dir()
    shared_issues()
    out = _demo(tmp_path, str(shared_dir()))
    assert "Check of the estimator on real text" in out and "full text (matched calibration)" in out
    assert "the real issues of ../shared/github-issues" in out
    assert "Shares over every filtered issue" in out
    assert re.search(r"applied to \d+ filtered issues \(\d+ full text\)", re.sub(r"\s+", " ", out))
