"""The issue text builder: Markdown/HTML reduced, error lines kept, token limit respected (real tokenizer)."""

from __future__ import annotations

import json

import pytest

from pipeline.classify.embed import default_model_path
from pipeline.classify.features import FeatureSpec, chunk_text, embedding_inputs, text_part
from pipeline.classify.text import (MODEL_MAX_TOKENS, IssueDoc, approx_tokens, build_issue_text, error_lines, issue_docs,
                                    markdown_to_text, token_counter)
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


def _store_with_one_crawled_issue(tmp_path):
    conn = connect(tmp_path / "s.db")
    url_crawled = "https://github.com/pytorch/pytorch/issues/1"
    url_title = "https://github.com/onnx/tensorflow-onnx/issues/2"
    conn.execute(
        "INSERT INTO issues(repo, number, source, url, title, body, state, raw, fetched_at) VALUES (?,?,?,?,?,?,?,?,?)",
        ("pytorch/pytorch", 1, "torch.onnx", url_crawled, "Crawled title", BODY, "closed", "{}", "now"))
    for seq, body in ((2, "second: error: opset 9 lacks unfold"), (1, "first comment")):  # stored out of order
        conn.execute("INSERT INTO timeline_events(repo, number, seq, event, raw) VALUES (?,?,?,?,?)",
                     ("pytorch/pytorch", 1, seq, "commented", json.dumps({"event": "commented", "body": body})))
    conn.execute("INSERT INTO timeline_events(repo, number, seq, event, raw) VALUES (?,?,?,?,?)",
                 ("pytorch/pytorch", 1, 3, "closed", json.dumps({"event": "closed", "commit_id": "abc"})))
    assert record_titles(conn, [(url_title, "  Only a   title "), ("https://github.com/x/y/issues/3", "")]) == 1
    return conn, url_crawled, url_title


def test_issue_docs_one_text_policy(tmp_path):
    conn, url_crawled, url_title = _store_with_one_crawled_issue(tmp_path)
    docs = issue_docs(conn, [url_crawled, url_title, "https://github.com/x/y/issues/9"])
    assert list(docs) == [url_crawled, url_title]  # no text at all: left out
    full, title = docs[url_crawled], docs[url_title]
    assert full.kind == "full" and full.title == "Crawled title" and full.body == BODY
    assert full.comments == ("first comment", "second: error: opset 9 lacks unfold")  # in thread order, bodies only
    assert title == IssueDoc(url_title, "Only a title") and title.kind == "title"
    assert full.as_title() == IssueDoc(url_crawled, "Crawled title")
    assert issue_docs(conn, [url_crawled], max_comments=1)[url_crawled].comments == ("first comment",)


def test_feature_parts_of_full_and_title_only_issues(tmp_path, count):
    conn, url_crawled, url_title = _store_with_one_crawled_issue(tmp_path)
    docs = issue_docs(conn, [url_crawled, url_title])
    spec = FeatureSpec(blocks=("title", "text", "chunks", "errors"))
    full = embedding_inputs(docs[url_crawled], spec, count)
    assert full["title"] == ["Crawled title"]
    assert full["text"][0].startswith("Crawled title\n" + ERROR) and "error: opset 9 lacks unfold" in full["text"][0]
    assert full["text"][0] == text_part(docs[url_crawled], spec, count)
    assert count(full["text"][0]) <= MODEL_MAX_TOKENS - 2
    assert len(full["chunks"]) >= 2 and all(count(c) <= MODEL_MAX_TOKENS - 2 for c in full["chunks"])
    assert "Some more words" in " ".join(full["chunks"])  # the whole thread, not only what fits the first piece
    assert ERROR in full["errors"][0]
    # known only by its title: every part is the title, so both kinds share one feature space
    assert embedding_inputs(docs[url_title], spec, count) == {b: ["Only a title"] for b in spec.blocks}
    assert chunk_text("", 10, count) == [""]


def test_cut_from_token_offsets_equals_the_binary_search(count):
    """The model counter cuts from one tokenisation (of a prefix of long texts); a plain counter
    runs the binary search over word prefixes. Same answers, long logs and odd spacing included."""
    from pipeline.classify.text import _cut

    plain = lambda s: count(s)  # no `ends`: the binary search
    texts = [BODY, ERROR, "x" * 3000, "a  b   c " * 400, "Ünïcödé naïve café, 日本語のテキスト " * 200,
             ("word " * 5000).strip(), "short", " leading and trailing spaces " * 50, "\n\n\t" * 300 + "tail " * 300]
    for text in texts:
        for budget in (0, 1, 7, 64, 254, 1000):
            assert _cut(text, budget, count) == _cut(text, budget, plain), (text[:40], budget)


def test_text_parts_are_cached_by_the_issue_text(tmp_path, count):
    """The store's text_parts cache gives what text_part builds, and a changed text is built again."""
    from pipeline.classify.features import text_parts

    conn = connect(tmp_path / "m.db")
    spec = FeatureSpec(blocks=("title", "text"))
    docs = [IssueDoc(f"https://github.com/o/r/issues/{i}", f"export fails {i}", BODY + f" case {i}", ("any update?",), "full")
            for i in range(5)] + [IssueDoc("https://github.com/o/r/issues/9", "title only")]
    fresh = [text_part(d, spec, count) for d in docs]
    assert text_parts(docs, spec, count, conn, "tok") == fresh
    assert conn.execute("SELECT COUNT(*) FROM text_parts").fetchone()[0] == 5  # title-only issues need no part
    assert text_parts(docs, spec, count, conn, "tok") == fresh                  # read back
    assert conn.execute("SELECT COUNT(*) FROM text_parts").fetchone()[0] == 5
    changed = IssueDoc(docs[0].url, docs[0].title, "RuntimeError: something else entirely", (), "full")
    assert text_parts([changed], spec, count, conn, "tok") == [text_part(changed, spec, count)]
    assert conn.execute("SELECT COUNT(*) FROM text_parts").fetchone()[0] == 6
    text_parts(docs[:1], spec, count, conn, "another tokenizer")  # the key covers the tokenizer
    assert conn.execute("SELECT COUNT(*) FROM text_parts").fetchone()[0] == 7
