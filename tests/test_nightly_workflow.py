"""The scheduled workflow (.github/workflows/nightly.yml): valid, on the README's schedule, self-contained."""

from __future__ import annotations

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


def test_workflow_needs_no_study_data_and_carries_the_retrained_model():
    """The shipped model classifies: nothing beyond the packages is fetched, and a model retrained
    because the labels grew (data/models, beside the store) is kept from night to night."""
    text = WORKFLOW.read_text(encoding="utf-8")
    assert "git clone" not in text and "../shared" not in text
    steps = _steps()
    for name in ("Restore the store and the nightly history", "Save the store and the nightly history"):
        assert set(steps[name]["with"]["path"].split()) == {"data/mine.db", "data/nightly", "data/models"}
