"""A small store of made-up converter issues in the real schema, to try the labelling tool and
to test it: ``write_demo_store(path)`` inserts issues with comments, linked commits and
cross-references, plus one issue whose body carries HTML/JS injection payloads."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.sources import converter_for_repo, issue_url
from pipeline.store.db import connect

XSS_BODY = """Converting this model fails, payloads below must show as text:

<script>window.__xss = 1; alert("script")</script>

<img src=x onerror="window.__xss = 2; alert('img')">

[click me](javascript:window.__xss=3)

<a href="javascript:alert(4)">raw link</a>

<iframe src="javascript:window.__xss=5"></iframe>

<div onmouseover="window.__xss = 6" onclick="alert(6)">hover div</div>

<svg onload="window.__xss=7"></svg>
"""

_TRACEBACK = """I am exporting a model with `torch.onnx.export` and it crashes:

```python
import torch
model = torch.nn.Upsample(scale_factor=2, mode="bicubic")
torch.onnx.export(model, torch.randn(1, 3, 8, 8), "up.onnx", opset_version=9)
```

```
Traceback (most recent call last):
  File "repro.py", line 3, in <module>
    torch.onnx.export(model, torch.randn(1, 3, 8, 8), "up.onnx", opset_version=9)
  File "torch/onnx/utils.py", line 516, in export
    _export(model, args, f, ...)
torch.onnx.errors.UnsupportedOperatorError: Exporting the operator 'aten::upsample_bicubic2d' to ONNX opset version 9 is not supported.
```

**Environment**: torch 1.13, onnx 1.12, Ubuntu 22.04
"""

DEMO_ISSUES = [
    ("pytorch/pytorch", 91001, "ONNX export of bicubic Upsample fails with opset 9", _TRACEBACK,
     ["module: onnx", "triaged"]),
    ("onnx/tensorflow-onnx", 2101, "Converted model gives wrong outputs for tf.nn.depth_to_space",
     "After conversion the outputs differ from TensorFlow by a lot.\n\n- tf 2.11\n- tf2onnx 1.14\n\n"
     "| input | tf | onnx |\n|---|---|---|\n| a | 1.0 | 0.0 |", ["bug"]),
    ("pytorch/pytorch", 91002, "torch.onnx.export hangs on a model with a while loop",
     "Export never returns; `py-spy` shows it spinning in `_jit_pass_onnx`.", ["module: onnx"]),
    ("onnx/tensorflow-onnx", 2102, "Resize op shape inference loses dynamic batch dimension",
     "The batch dimension becomes `1` after conversion with `--opset 13`.", ["bug", "pending on user response"]),
    ("pytorch/pytorch", 91003, "Exported model larger than 2GB cannot be saved",
     "`ValueError: Message onnx.ModelProto exceeds maximum protobuf size of 2GB`", ["module: onnx"]),
    ("onnx/tensorflow-onnx", 2103, "Typo in the error message of the Einsum handler",
     "The message says `Einsun` instead of `Einsum`.", ["bug"]),
]


def _issue_raw(repo: str, number: int, title: str, body: str, labels: list[str], created: str) -> dict:
    return {
        "url": f"https://api.github.com/repos/{repo}/issues/{number}",
        "html_url": issue_url(repo, number), "number": number, "title": title, "body": body,
        "state": "closed", "labels": [{"name": n} for n in labels], "user": {"login": "reporter"},
        "created_at": created, "updated_at": created, "closed_at": created,
    }


def _timeline(repo: str, number: int, created: str) -> list[dict]:
    sha = f"{number:08x}" + "ab" * 16
    return [
        {"event": "commented", "created_at": created, "user": {"login": "maintainer"},
         "html_url": f"{issue_url(repo, number)}#issuecomment-1",
         "body": "Thanks for the report. Can you try the nightly build?\n\n```\npip install --pre torch\n```"},
        {"event": "commented", "created_at": created, "user": {"login": "reporter"},
         "html_url": f"{issue_url(repo, number)}#issuecomment-2", "body": "Same error with the nightly."},
        {"event": "cross-referenced", "created_at": created, "actor": {"login": "fixer"},
         "source": {"type": "issue", "issue": {"number": number + 500, "title": "Fix the handler",
                                               "html_url": f"https://github.com/{repo}/pull/{number + 500}",
                                               "state": "closed", "pull_request": {"html_url": f"https://github.com/{repo}/pull/{number + 500}"},
                                               "repository": {"full_name": repo}}}},
        {"event": "referenced", "created_at": created, "actor": {"login": "fixer"}, "commit_id": sha,
         "commit_url": f"https://api.github.com/repos/{repo}/commits/{sha}"},
        {"event": "closed", "created_at": created, "actor": {"login": "fixer"}, "commit_id": sha,
         "commit_url": f"https://api.github.com/repos/{repo}/commits/{sha}"},
    ]


def insert_issue(conn, repo: str, number: int, title: str, body: str, labels: list[str],
                 created: str, timeline: list[dict] | None = None) -> str:
    """Insert one issue (and its timeline) into the store's real tables; returns its URL."""
    url = issue_url(repo, number)
    raw = _issue_raw(repo, number, title, body, labels, created)
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO issues(repo, number, source, url, title, body, state, labels, is_pull, "
            "created_at, updated_at, closed_at, raw, timeline_for, fetched_at) VALUES (?,?,?,?,?,?,?,?,0,?,?,?,?,?,?)",
            (repo, number, converter_for_repo(repo) or repo, url, title, body, "closed", json.dumps(labels), created, created, created,
             json.dumps(raw), created, created),
        )
        conn.execute("DELETE FROM timeline_events WHERE repo = ? AND number = ?", (repo, number))
        for seq, ev in enumerate(timeline or []):
            conn.execute("INSERT INTO timeline_events(repo, number, seq, event, created_at, raw) VALUES (?,?,?,?,?,?)",
                         (repo, number, seq, ev["event"], ev.get("created_at"), json.dumps(ev)))
    return url


def write_demo_store(path: Path | str, *, xss: bool = True) -> list[str]:
    """Create the demo store at ``path``; returns the issue URLs in creation order."""
    conn = connect(path)
    urls = []
    try:
        for i, (repo, number, title, body, labels) in enumerate(DEMO_ISSUES):
            created = f"2023-0{1 + i % 9}-1{i % 10}T10:00:00Z"
            urls.append(insert_issue(conn, repo, number, title, body, labels, created, _timeline(repo, number, created)))
        if xss:
            created = "2023-09-19T10:00:00Z"
            evil_comment = {"event": "commented", "created_at": created, "user": {"login": "mallory"},
                            "html_url": "javascript:alert(9)", "body": XSS_BODY}
            urls.append(insert_issue(conn, "onnx/tensorflow-onnx", 2666, 'Title with <script>window.__xss=8</script>',
                                     XSS_BODY, ["<b>label</b>"], created, [evil_comment]))
    finally:
        conn.close()
    return urls
