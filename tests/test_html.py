"""The HTML report: self-contained, escaped, and rendered by headless Chromium with its figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipeline.label_files.files import read_labels
from pipeline.report.estimate import add_wilson
from pipeline.report.figures import close_all, report_figures
from pipeline.report.html import render_html, write_html
from pipeline.report.tables import build_report

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]


def _trend_rows(dim: str = "stage") -> list[dict]:
    """Over-time rows as :func:`pipeline.report.trends.trend_tables` gives them (two quarters, gold)."""
    rows = []
    for period, counts in (("2021Q1", {"node_conversion": 3, "export": 1}), ("2021Q2", {"node_conversion": 2, "optimization": 2})):
        n = sum(counts.values())
        for cat, c in counts.items():
            rows.append({"category": cat, "period": period, "counts": {"total": c}, "share": {"total": c / n},
                         "ci": {"total": [0.0, 1.0]}, "method": "gold"})
    return rows


def _report():
    return add_wilson(build_report(read_labels("labels/study.csv")))


def test_page_is_self_contained_and_escapes_everything():
    rep = _report()
    evil = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    rep.notes.append(evil)
    rep.tables["stage"][0]["category"] = evil  # a category id that is not in the codebook is shown as is
    figs = report_figures({"stage_by_quarter": _trend_rows()})
    page = render_html(rep, figures=figs, changes=[evil],
                       new_issues=[{"url": "https://github.com/o/r/issues/1", "converter": "tf2onnx", "title": evil,
                                    "stage": "Node Conversion", "symptom": "Crash"}])
    close_all(figs)
    assert "<script>" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;alert(" in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    # nothing is fetched: no external scripts, stylesheets or images
    assert not re.search(r'<(script|link)\b', page)
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'<img[^>]*src="([^"]+)"', page))
    assert "How the numbers were made" in page and "Wilson" in page
    assert "[68%, 80%]" in page  # node conversion total 148/200 with its Wilson interval


@pytest.mark.browser
def test_page_opens_in_headless_chromium_with_figures(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    rep = _report()
    figs = report_figures({"stage_by_quarter": _trend_rows(), "symptom_by_year": []})
    path = write_html(tmp_path / "report.html", rep, figures=figs)
    close_all(figs)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
            assert len(widths) == 2 and all(w > 0 for w in widths)
            assert page.title().startswith("ONNX converter failures")
            cell = page.locator("table").first.locator("tbody tr").nth(1).inner_text()
            assert "Node Conversion" in cell and "[68%, 80%]" in cell
        finally:
            browser.close()


VALIDATION = {"chosen_method": "rpcc", "mean_abs_error_pp": {"rpcc": 4.1, "cc": 4.7, "pcc": 7.6, "pacc": 14.4, "acc": 22.1},
              "coverage": {"rpcc": 1.0, "cc": 0.5, "pcc": 0.9, "pacc": 0.8, "acc": 0.4}}


def test_cross_tables_are_pivoted_and_prose_is_escaped_with_code_spans():
    rep = _report()
    page = render_html(rep, changes=["1 new"], new_issues=[{"url": "javascript:alert(1)", "converter": "tf2onnx", "title": "t",
                                         "kept": True, "stage": "", "symptom": ""}])
    # Table 10 in the paper's layout: a column group per symptom, a count per converter
    table10 = page.split('id="t-cause_x_symptom"')[1].split("</table>")[0]
    assert '<th colspan="2" class="group">Crash</th>' in table10
    assert re.search(r"<td class=\"key\">Incompatibility</td><td>19</td><td>28</td>", table10)
    # the prose's `commands` are <code>, everything else escaped; a non-https issue URL is never a link
    assert 'href="javascript:' not in page and "javascript:alert(1)" in page
    est = build_report(read_labels("labels/study.csv"))
    for rows in est.tables.values():
        for r in rows:
            r["method"] = "rpcc"
    est.source = "predicted"
    page = render_html(est)
    assert "<code>mine validate-estimates</code>" in page and "`" not in page.split('id="how"')[1]
    assert "estimated number of issues" in page and "estimated from the classifier for every issue" in page


@pytest.mark.browser
def test_page_fits_the_window_with_the_validation_table(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    path = write_html(tmp_path / "report.html", _report(), validation=VALIDATION)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            # every table, the validation table's long method names included, stays inside the window
            assert page.evaluate("document.documentElement.scrollWidth") <= 1200
            assert "Gold inside 95% interval" in page.locator("table").last.inner_text()
        finally:
            browser.close()
