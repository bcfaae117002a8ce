"""Figures of the over-time tables (matplotlib, Agg backend): PNG and SVG.

- :func:`stacked_shares` — one stacked bar per period: the share of each category (total column).
- :func:`cumulative_by_stage` — cumulative (estimated) number of failures by stage over time.
- :func:`converter_shares` — one horizontal stacked bar per converter (and all of them): the
  share of each category, so six converters compare at a glance.

The first two take the rows of :func:`pipeline.report.trends.trend_tables`, the third a report
table's rows; :func:`report_figures` makes every figure a report allows, :func:`save` writes PNG + SVG.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display, deterministic output; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.codebook import Codebook, load_codebook  # noqa: E402
from pipeline.report.render import category_name  # noqa: E402
from pipeline.report.tables import TOTAL  # noqa: E402

# SVG text stays text and files are reproducible (no date, fixed hash salt)
plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "converter-failure-mining", "figure.dpi": 100})
_METADATA = {"svg": {"Date": None}, "png": {"Software": None}}


def _matrix(rows: list[dict], value: str, column: str = TOTAL) -> pd.DataFrame:
    df = pd.DataFrame([{"period": r["period"], "category": r["category"], "v": float(r[value][column])} for r in rows])
    if df.empty:
        return df
    m = df.pivot_table(index="period", columns="category", values="v", aggfunc="sum", fill_value=0.0)
    return m.sort_index()


def stacked_shares(rows: list[dict], dim: str, title: str | None = None, cb: Codebook | None = None) -> plt.Figure:
    """Stacked bars: per period, the share of each ``dim`` category among that period's failures."""
    cb = cb or load_codebook()
    m = _matrix(rows, "share")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(m) + 3), 4.2))
    if m.empty:
        ax.text(0.5, 0.5, "no dated issues", ha="center", va="center")
    else:
        m = m.loc[:, m.sum(axis=0) > 0]
        order = m.sum(axis=0).sort_values(ascending=False).index
        bottom = pd.Series(0.0, index=m.index)
        cmap = plt.get_cmap("tab20")
        for i, cat in enumerate(order):
            ax.bar(m.index, m[cat], bottom=bottom, label=category_name(cb, dim, cat), color=cmap(i % 20), width=0.8)
            bottom += m[cat]
        ax.set_ylim(0, 1.08)
        ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
        ax.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
        # how many issues each bar stands for: a share of 2 issues is not a share of 200
        sizes = _matrix(rows, "counts").sum(axis=1).reindex(m.index)
        for x, n in zip(m.index, sizes):
            ax.text(x, 1.01, f"{n:.0f}", ha="center", va="bottom", fontsize=6, color="#555")
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False)
        ax.tick_params(axis="x", rotation=60 if len(m) > 8 else 0, labelsize=8)
    ax.set_ylabel("share of failures")
    ax.set_title((title or f"Failures by {dim} over time") + " (issues per bar above it)", fontsize=10)
    fig.tight_layout()
    return fig


def cumulative_by_stage(rows: list[dict], title: str | None = None, cb: Codebook | None = None) -> plt.Figure:
    """Lines: cumulative number of failures of each stage up to each period (estimated counts when predicted)."""
    cb = cb or load_codebook()
    m = _matrix(rows, "counts")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.45 * len(m) + 3), 4.2))
    if m.empty:
        ax.text(0.5, 0.5, "no dated issues", ha="center", va="center")
    else:
        c = m.cumsum()
        c = c.loc[:, c.iloc[-1] > 0]
        for cat in c.iloc[-1].sort_values(ascending=False).index:
            ax.plot(c.index, c[cat], marker="o", markersize=3, label=category_name(cb, "stage", cat))
        ax.legend(loc="upper left", fontsize=8, frameon=False)
        ax.tick_params(axis="x", rotation=60 if len(m) > 8 else 0, labelsize=8)
    ax.set_ylabel("failures (cumulative)")
    ax.set_title(title or "Cumulative failures by stage", fontsize=10)
    fig.tight_layout()
    return fig


def converter_shares(rows: list[dict], converters: list[str], dim: str, title: str | None = None,
                     cb: Codebook | None = None) -> plt.Figure:
    """Horizontal stacked bars: per converter (top to bottom, then all converters), the share of
    each ``dim`` category among its failures; the number of issues at the end of each bar."""
    cb = cb or load_codebook()
    cols = [*converters, TOTAL]
    shares = pd.DataFrame({r["category"]: [float(r["share"].get(c, 0.0)) for c in cols] for r in rows}, index=cols)
    counts = pd.DataFrame({r["category"]: [float(r["counts"].get(c, 0.0)) for c in cols] for r in rows}, index=cols)
    shares = shares.loc[:, shares.sum(axis=0) > 0]
    fig, ax = plt.subplots(figsize=(8.0, 0.45 * len(cols) + 1.6))
    labels = [("all converters" if c == TOTAL else c) for c in cols]
    left = pd.Series(0.0, index=cols)
    cmap = plt.get_cmap("tab20")
    for i, cat in enumerate(shares.sum(axis=0).sort_values(ascending=False).index):
        ax.barh(labels, shares[cat], left=left, label=category_name(cb, dim, cat), color=cmap(i % 20), height=0.7)
        left += shares[cat]
    for y, c in enumerate(cols):
        ax.text(1.01, y, f"{counts.loc[c].sum():.0f}", va="center", fontsize=7, color="#555")
    ax.invert_yaxis()  # converters top to bottom in table order, all converters last
    ax.set_xlim(0, 1.08)
    ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8, frameon=False)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_title(title or f"Failures by {dim} per converter (issues per bar at its end)", fontsize=10)
    fig.tight_layout()
    return fig


MIN_ISSUES_PER_QUARTER = 10  # below this on average, quarterly shares are noise: figures show years


def _issues_per_period(rows: list[dict]) -> float:
    m = _matrix(rows, "counts")
    return float(m.sum(axis=1).mean()) if not m.empty else 0.0


def report_figures(trends: dict[str, list[dict]], cb: Codebook | None = None, report=None) -> dict[str, plt.Figure]:
    """Every figure the over-time tables allow: ``<dim>_over_time`` and ``stage_cumulative``, per quarter
    when quarters hold :data:`MIN_ISSUES_PER_QUARTER` issues on average, else per year; with a
    ``report`` (a :class:`~pipeline.report.tables.Report`) of two or more converters, also
    ``<dim>_by_converter`` for stage and symptom."""
    cb = cb or load_codebook()
    figs: dict[str, plt.Figure] = {}
    if report is not None and len(report.converters) > 1:
        for dim in ("stage", "symptom"):
            if report.tables.get(dim):
                figs[f"{dim}_by_converter"] = converter_shares(report.tables[dim], report.converters, dim, cb=cb)
    for dim in ("stage", "symptom", "cause"):
        quarters = trends.get(f"{dim}_by_quarter")
        freqs = ("quarter", "year") if quarters and _issues_per_period(quarters) >= MIN_ISSUES_PER_QUARTER \
            else ("year", "quarter")
        for freq in freqs:
            rows = trends.get(f"{dim}_by_{freq}")
            if rows:
                figs[f"{dim}_over_time"] = stacked_shares(rows, dim, f"Failures by {dim}, share per {freq}", cb)
                if dim == "stage":
                    figs["stage_cumulative"] = cumulative_by_stage(rows, f"Cumulative failures by stage (per {freq})", cb)
                break
    return figs


def png_bytes(fig: plt.Figure) -> bytes:
    """The figure as PNG: the bytes :func:`save` wrote, when it saved this figure (``report.html``
    embeds the figures just saved; drawing each again was a third of a report's figure time).
    Report figures are not changed once saved; matplotlib's ``stale`` flag cannot tell, since
    every ``savefig`` with a tight bounding box sets it."""
    cached = getattr(fig, "_mine_saved_png", None)
    if cached is not None:
        return cached
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata=_METADATA["png"])
    return buf.getvalue()


def svg_text(fig: plt.Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=_METADATA["svg"])
    return buf.getvalue()


def save(fig: plt.Figure, out_dir: Path | str, stem: str) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.svg`` under ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png, svg = out / f"{stem}.png", out / f"{stem}.svg"
    data = png_bytes(fig)
    png.write_bytes(data)
    svg.write_text(svg_text(fig), encoding="utf-8")
    fig._mine_saved_png = data
    return [png, svg]


def close_all(figs: dict[str, plt.Figure]) -> None:
    for f in figs.values():
        plt.close(f)
