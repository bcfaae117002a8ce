"""The issue text builder: Markdown/HTML reduced, error lines kept, token limit respected (real tokenizer)."""

from __future__ import annotations

import json

import pytest

from pipeline.classify.embed import default_model_path
from pipeline.classify.text import (MODEL_MAX_TOKENS, approx_tokens, build_issue_text, error_lines, markdown_to_text,
                                    texts_for, token_counter)
from pipeline.classify.titles import record_titles
from pipeline.store.db import connect

ERROR = "RuntimeError: ONNX export failed: Couldn't export operator aten::unfold, it is not supported"

BODY = (
    "## 🐛 Bug\n\nExporting my model with <b>torch.onnx</b> fails, see [the docs](https://pytorch.org/docs).\n"
    "<!-- a template comment nobody reads -->\n\n"
    "![screenshot](https://example.com/a.png)\n\n"
    "```python\nimport torch\nmodel = MyModel()\ntorch.onnx.export(model, x, 'm.onnx', opset_version=11)\n```\n\n"
    "```\nTraceback (most recent call last):\n"
    + '  File "train.py", line 12, in <module>\n    torch.onnx.export(model, x)\n' * 60
    + f"{ERROR}\n```\n\n"
    + "Some more words about my environment and what I tried. " * 80
)


@pytest.fixture(scope="module")
def count():
    return token_counter(default_model_path())


def test_markdown_and_html_are_reduced_to_text():
    prose, code = markdown_to_text(BODY)
    assert "<b>" not in prose and "https://" not in prose and "template comment" not in prose
    assert "Exporting my model with torch.onnx fails, see the docs." in prose
    assert "🐛 Bug" in prose and "##" not in prose
    assert any(ERROR in line for line in code)
    assert "import torch" in code


def test_error_lines_pick_exceptions_not_frames():
    _, code = markdown_to_text(BODY)
    errs = error_lines(code)
    assert errs == [ERROR]


def test_long_issue_keeps_title_and_error_line_under_the_token_limit(count):
    comments = ["Same here.\n```\nonnx.onnx_cpp2py_export.checker.ValidationError: Field 'shape' of type is required\n```",
                "Thanks, fixed by #123. " * 50]
    text = build_issue_text("Export of unfold fails", BODY, comments, count_tokens=count)
    assert count(text) <= MODEL_MAX_TOKENS - 2
    lines = text.splitlines()
    assert lines[0] == "Export of unfold fails"
    assert lines[1] == ERROR  # the exception line comes right after the title, whole
    assert "ValidationError: Field 'shape' of type is required" in text  # a comment's error line too
    assert 'File "train.py"' not in text  # traceback frames are noise
    assert "Some more words" in text  # prose fills what is left


def test_default_counter_is_the_models_tokenizer_and_approximation_is_conservative(count):
    text = build_issue_text("t", BODY)
    assert count(text) <= MODEL_MAX_TOKENS - 2
    assert approx_tokens(text) >= count(text)
    short = build_issue_text("x" * 3, BODY, max_tokens=64, count_tokens=approx_tokens)
    assert count(short) <= 62 and approx_tokens(short) <= 62


def test_huge_single_error_line_is_cut(count):
    body = "```\n" + "ValueError: " + "very long message " * 400 + "\n```"
    text = build_issue_text("A title", body, count_tokens=count)
    assert text.startswith("A title\nValueError: very long message")
    assert count(text) <= MODEL_MAX_TOKENS - 2


def test_texts_for_title_and_full(tmp_path, count):
    conn = connect(tmp_path / "s.db")
    url_crawled = "https://github.com/pytorch/pytorch/issues/1"
    url_title = "https://github.com/onnx/tensorflow-onnx/issues/2"
    conn.execute(
        "INSERT INTO issues(repo, number, source, url, title, body, state, raw, fetched_at) VALUES (?,?,?,?,?,?,?,?,?)",
        ("pytorch/pytorch", 1, "torch.onnx", url_crawled, "Crawled title", BODY, "closed", "{}", "now"))
    conn.execute("INSERT INTO timeline_events(repo, number, seq, event, raw) VALUES (?,?,?,?,?)",
                 ("pytorch/pytorch", 1, 1, "commented", json.dumps({"event": "commented", "body": "error: opset 9 lacks unfold"})))
    assert record_titles(conn, [(url_title, "  Only a   title "), ("https://github.com/x/y/issues/3", "")]) == 1
    texts, kinds = texts_for(conn, [url_crawled, url_title, "https://github.com/x/y/issues/9"], "full", count_tokens=count)
    assert kinds == {url_crawled: "full", url_title: "title"}
    assert texts[url_title] == "Only a title"
    assert texts[url_crawled].startswith("Crawled title\n" + ERROR) and "error: opset 9 lacks unfold" in texts[url_crawled]
    texts, kinds = texts_for(conn, [url_crawled, url_title], "title")
    assert texts == {url_crawled: "Crawled title", url_title: "Only a title"} and set(kinds.values()) == {"title"}
