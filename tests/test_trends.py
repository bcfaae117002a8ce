"""Over-time tables (per year / quarter of issue creation) and their figures (PNG + SVG)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline.report.estimate import Calibration, Evidence, StoreData
from pipeline.report.figures import close_all, report_figures, save
from pipeline.report.render import render
from pipeline.report.tables import Report
from pipeline.report.trends import full_report, gold_trend_rows, period_of, trend_tables


def test_period_of_years_quarters_and_missing_dates():
    s = pd.Series(["2021-03-04T00:00:00Z", None, "2019-12-31T23:59:59Z", "not a date"])
    assert period_of(s, "year").tolist() == ["2021", "", "2019", ""]
    assert period_of(s, "quarter").tolist() == ["2021Q1", "", "2019Q4", ""]


def _issues() -> pd.DataFrame:
    rows = []
    dates = ["2020-01-10T00:00:00Z", "2020-05-01T00:00:00Z", "2021-02-01T00:00:00Z", "2021-08-01T00:00:00Z", None]
    stages = ["node_conversion", "optimization", "node_conversion", "", "load_model"]
    for i, (d, st) in enumerate(zip(dates * 4, stages * 4)):
        rows.append({"url": f"https://github.com/onnx/tensorflow-onnx/issues/{i + 1}",
                     "converter": "tf2onnx" if i % 2 else "torch.onnx", "created_at": d, "title": f"t{i}",
                     "stage": st, "symptom": "", "cause": ""})
    return pd.DataFrame(rows)


def test_gold_rows_per_year_with_wilson():
    issues = _issues()
    rows = gold_trend_rows(issues, "stage", "year", ["tf2onnx", "torch.onnx"])
    y2020 = {r["category"]: r for r in rows if r["period"] == "2020"}
    assert y2020["node_conversion"]["counts"]["total"] == 4 and y2020["optimization"]["counts"]["total"] == 4
    assert y2020["node_conversion"]["share"]["total"] == 0.5
    lo, hi = y2020["node_conversion"]["ci"]["total"]
    assert lo < 0.5 < hi and y2020["node_conversion"]["method"] == "gold"
    # the undated issues and the unlabelled ones count in no period
    assert sum(r["counts"]["total"] for r in rows) == 12


def _synthetic_data() -> StoreData:
    """Store data with a synthetic classifier (its evidence built by hand: no model needed)."""
    rng = np.random.default_rng(0)
    issues = _issues().assign(stage="")
    k = 3
    y = rng.integers(0, k, 200)
    proba = np.full((200, k), 0.15)
    proba[np.arange(200), y] = 0.7
    target = rng.dirichlet([2, 1, 1], len(issues))
    ev = Evidence({"stage": Calibration(["load_model", "node_conversion", "other"], y, proba)}, {"stage": target})
    return StoreData(issues, pd.DataFrame(columns=["url"]), ev)


@pytest.mark.parametrize("mode", ["predicted", "both"])
def test_estimated_trends_and_figures(tmp_path, mode):
    data = _synthetic_data()
    tables, notes = trend_tables(data, mode, bootstrap=50)
    assert set(tables) == {"stage_by_year", "stage_by_quarter"}
    assert any("without a creation date" in n for n in notes)
    by_year = pd.DataFrame([{"period": r["period"], "share": r["share"]["total"], "method": r["method"]}
                            for r in tables["stage_by_year"]])
    assert sorted(by_year["period"].unique()) == ["2020", "2021"]
    assert by_year.groupby("period")["share"].sum().round(3).eq(1.0).all()
    assert (by_year["method"] == "rpcc").all()
    quarters = sorted({r["period"] for r in tables["stage_by_quarter"]})
    assert quarters == ["2020Q1", "2020Q2", "2021Q1", "2021Q3"]
    figs = report_figures(tables)
    assert set(figs) == {"stage_over_time", "stage_cumulative"}
    for name, fig in figs.items():
        png, svg = save(fig, tmp_path, name)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        assert svg.read_text().lstrip().startswith("<?xml") and "<svg" in svg.read_text()
    close_all(figs)
    # every format renders the period column and the interval
    rep = Report(len(data.issues), ["tf2onnx", "torch.onnx"], tables, [], mode,
                 {"tf2onnx": 10, "torch.onnx": 10, "total": 20})
    md = render(rep, "markdown")
    assert "| Period | Stage |" in md and "2021Q3" in md and "[" in md
    csv = render(rep, "csv")
    assert "period" in csv.splitlines()[0].split(",") and ",2021Q3," in csv
    d = json.loads(render(rep, "json"))
    assert d["tables"]["stage_by_year"][0]["period"] == "2020"


def test_full_report_gold_without_store_has_no_trends():
    from pipeline.label_files.files import read_labels

    rep, trends, _ = full_report(read_labels("labels/study.csv"), "gold", None)
    assert trends == {} and rep.tables["stage"][0]["method"] == "gold"


def test_gold_over_time_from_a_crawled_store(emulator, tmp_path):
    """Labels for crawled issues + their creation dates from the store -> per-year gold tables."""
    from pipeline.crawl.client import GitHubClient
    from pipeline.crawl.crawler import crawl
    from pipeline.label_files.files import read_labels
    from pipeline.sample.filter import filtered_issues
    from pipeline.sources import load_sources
    from pipeline.store.db import connect

    conn = connect(tmp_path / "m.db")
    crawl(conn, load_sources(), GitHubClient(emulator.url))
    kept = filtered_issues(conn)
    assert kept
    csv = tmp_path / "labels.csv"
    cats = ["node_conversion", "optimization", "load_model"]
    lines = ["url,stage,symptom,cause"] + [f"{r['url']},{cats[i % 3]},crash,others" for i, r in enumerate(kept)]
    csv.write_text("\n".join(lines) + "\n")
    rep, trends, _ = full_report(read_labels(csv), "gold", conn)
    assert "stage_by_year" in trends and "stage_by_quarter" in trends
    years = {r["period"] for r in trends["stage_by_year"]}
    created = {str(pd.Timestamp(r["created_at"]).year) for r in kept}
    assert years == created
    assert sum(r["counts"]["total"] for r in trends["stage_by_year"]) == len(kept)


def _rows(periods: dict[str, dict[str, int]]) -> list[dict]:
    rows = []
    for period, counts in periods.items():
        n = sum(counts.values())
        rows += [{"category": c, "period": period, "counts": {"total": k}, "share": {"total": k / n},
                  "ci": {"total": [0.0, 1.0]}, "method": "gold"} for c, k in counts.items()]
    return rows


def test_figures_use_years_when_quarters_hold_few_issues_and_show_issues_per_bar():
    sparse_q = _rows({"2020Q1": {"node_conversion": 1}, "2020Q3": {"export": 1, "node_conversion": 1},
                      "2021Q2": {"optimization": 2}})
    years = _rows({"2020": {"node_conversion": 2, "export": 1}, "2021": {"optimization": 2}})
    figs = report_figures({"stage_by_quarter": sparse_q, "stage_by_year": years})
    try:
        assert "per year" in figs["stage_over_time"].axes[0].get_title()
        assert "per year" in figs["stage_cumulative"].axes[0].get_title()
        labels = [t.get_text() for t in figs["stage_over_time"].axes[0].texts]
        assert labels == ["3", "2"]  # issues behind each bar
    finally:
        close_all(figs)
    dense_q = _rows({"2020Q1": {"node_conversion": 12, "export": 3}, "2020Q2": {"optimization": 11}})
    figs = report_figures({"stage_by_quarter": dense_q, "stage_by_year": years})
    try:
        assert "per quarter" in figs["stage_over_time"].axes[0].get_title()
    finally:
        close_all(figs)
