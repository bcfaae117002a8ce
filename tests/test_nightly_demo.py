"""`python -m pipeline.demo` (make demo) runs offline end to end; here without ../shared (fast path)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from pipeline.paths import PROJECT_ROOT


def test_demo_without_shared_data_runs_and_says_what_it_skips(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MINE_SHARED_DIR": str(tmp_path / "no-shared"),
           "MINE_DEMO_DIR": str(tmp_path / "demo")}
    proc = subprocess.run([sys.executable, "-m", "pipeline.demo"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "148 (74%)" in out                      # Table 8 from the committed labels
    assert "predicted part" in out and "skipped" in out
    m = re.search(r"touched \[([\d, ]+)\], reported \[([\d, ]+)\]", out)
    assert m and m.group(1) == m.group(2)
    html = out.strip().splitlines()[-1]
    assert html.endswith("report.html") and os.path.isfile(html)
