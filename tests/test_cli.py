"""The `mine` entry point: help for every command, user errors on one line with exit code 2."""

from pathlib import Path

import pytest

from tests.helpers import run_mine

COMMANDS = ["import-study", "crawl", "status", "emulate", "filter", "sample", "label", "adjudicate", "train",
            "classify", "evaluate", "report", "validate-estimates", "agree", "nightly", "labels"]


def test_every_command_has_help():
    res = run_mine("--help")
    assert res.returncode == 0
    for cmd in COMMANDS:
        assert cmd in res.stdout, cmd
        sub = run_mine(cmd, "--help")
        assert sub.returncode == 0 and "Usage:" in sub.stdout and cmd in sub.stdout, (cmd, sub.stderr)


@pytest.mark.parametrize("yaml_text,needle", [
    ("sources:\n  - name: x\n    repo: a/b\n    labels: onnx\n", "labels must be a list of names"),
    ("- name: x\n", "top-level 'sources:' list"),
    ("sources:\n  - name: x\n    repo: a/b\n    lables: [onnx]\n", "unknown key(s) lables"),
    ("sources:\n  - {name: x, repo: a/b}\n  - {name: y, repo: A/B}\n", "more than one source in repository a/b"),
])
def test_bad_sources_file_is_one_line(tmp_path: Path, yaml_text: str, needle: str):
    f = tmp_path / "sources.yaml"
    f.write_text(yaml_text)
    res = run_mine("crawl", "--sources", str(f), "--db", str(tmp_path / "x.db"), "--api-url", "http://127.0.0.1:9")
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_error_text_is_not_read_as_markup(tmp_path: Path):
    bad = tmp_path / "[bug].csv"
    bad.write_text("url,stage\nhttps://github.com/pytorch/pytorch/issues/1,[bold]x\n")
    res = run_mine("report", str(bad))
    assert res.returncode == 2
    assert "[bug].csv" in res.stderr and "'[bold]x'" in res.stderr
