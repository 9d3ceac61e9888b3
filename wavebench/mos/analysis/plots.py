"""MOS report figures (listening-test.md 12.5), each returned as PNG and SVG bytes.

Built on :class:`matplotlib.figure.Figure` with the Agg canvas, as :mod:`reports.plots`
does: no pyplot global state.
"""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_DPI = 100


def _render(fig: Figure) -> dict:
    FigureCanvasAgg(fig)
    out = {}
    for fmt in ("png", "svg"):
        buffer = io.BytesIO()
        # No date and a fixed salt for the SVG's element ids keep it byte-identical across runs.
        meta = {"Date": None} if fmt == "svg" else None
        with matplotlib.rc_context({"svg.hashsalt": "wavebench"}):
            fig.savefig(buffer, format=fmt, dpi=_DPI, metadata=meta)
        out[fmt] = buffer.getvalue()
    return out


def plot_system_mos(scores: pd.DataFrame, primary: str, scale=(1, 5)) -> dict:
    """MOS per condition with the primary interval, sorted; natural and anchors shaded."""
    df = scores.sort_values("mean")
    fig = Figure(figsize=(7, 0.5 * len(df) + 1.5))
    ax = fig.add_subplot()
    y = np.arange(len(df))
    lo, hi = df[f"ci_lo_{primary}"].to_numpy(), df[f"ci_hi_{primary}"].to_numpy()
    means = df["mean"].to_numpy()
    colours = ["#9aa5b1" if r != "system" else "#2a5d9f" for r in df["role"]]
    ax.errorbar(means, y, xerr=[means - lo, hi - means], fmt="none", ecolor="#333", capsize=3)
    ax.scatter(means, y, c=colours, zorder=3)
    ax.set_yticks(y, df["condition"])
    ax.set_xlim(*scale)
    ax.set_xlabel(f"MOS with 95 % interval ({primary}); grey = natural/anchor")
    fig.tight_layout()
    return _render(fig)


def plot_distribution(rated: pd.DataFrame, order) -> dict:
    """100 % stacked bars of the rating categories per condition (ordinal data)."""
    scores = rated["score"]
    # Category scales (ACR 1-5, CCR -3..3) show each answer; 0-100 scales show 5 bands.
    labels = np.round(scores).astype(int) if scores.nunique() <= 11 else \
        pd.cut(scores, [-0.1, 20, 40, 60, 80, 100.1], labels=["0-20", "20-40", "40-60",
                                                              "60-80", "80-100"])
    shares = pd.crosstab(rated["condition"], labels,
                         normalize="index").reindex(list(order)[::-1])
    fig = Figure(figsize=(7, 0.45 * len(shares) + 1.5))
    ax = fig.add_subplot()
    left = np.zeros(len(shares))
    cmap = matplotlib.colormaps["RdYlGn"]
    cats = list(shares.columns)
    for k, cat in enumerate(cats):
        ax.barh(shares.index, shares[cat], left=left, label=str(cat),
                color=cmap(k / max(1, len(cats) - 1)))
        left += shares[cat].to_numpy()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of ratings")
    ax.legend(ncol=len(cats), loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    fig.tight_layout()
    return _render(fig)


def plot_pairwise_matrix(pairs: pd.DataFrame, order) -> dict:
    """Adjusted p-values of every pair as a matrix, the MOS difference annotated."""
    order = list(order)
    n = len(order)
    p = np.full((n, n), np.nan)
    fig = Figure(figsize=(1.0 * n + 2, 1.0 * n + 1.5))
    ax = fig.add_subplot()
    for row in pairs.itertuples():
        a, b = order.index(row.sys_a), order.index(row.sys_b)
        p[a, b] = p[b, a] = row.p_holm
        dark = -np.log10(max(row.p_holm, 1e-6)) > 3  # white text on dark cells
        for i, j, sign in ((a, b, 1), (b, a, -1)):
            ax.text(j, i, f"{sign * row.mean_diff:+.2f}{'*' if row.significant else ''}",
                    ha="center", va="center", fontsize=8, color="white" if dark else "black")
    image = ax.imshow(-np.log10(np.clip(p, 1e-6, 1)), cmap="Blues", vmin=0, vmax=6)
    ax.set_xticks(range(n), order, rotation=45, ha="right")
    ax.set_yticks(range(n), order)
    fig.colorbar(image, ax=ax, label="-log10 Holm-adjusted p")
    ax.set_title("row minus column; * significant")
    fig.tight_layout()
    return _render(fig)


def plot_rater_scatter(raters: pd.DataFrame) -> dict:
    """Rater bias vs leave-one-out consensus correlation, excluded raters marked."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    for excluded, marker, colour, label in ((False, "o", "#2a5d9f", "kept"),
                                            (True, "x", "#c0392b", "excluded")):
        part = raters[raters["excluded"] == excluded]
        ax.scatter(part["r_pearson_loo"], part["bias"], marker=marker, c=colour, label=label)
    ax.axhline(0, color="#999", lw=0.8)
    ax.set_xlabel("leave-one-out Pearson r with consensus")
    ax.set_ylabel("bias (rating - consensus)")
    ax.legend()
    fig.tight_layout()
    return _render(fig)


def plot_item_heatmap(items: pd.DataFrame, order) -> dict:
    """Item x condition heatmap of mean ratings."""
    grid = items.pivot(index="item", columns="condition", values="mean")[list(order)]
    fig = Figure(figsize=(0.8 * grid.shape[1] + 3, 0.22 * grid.shape[0] + 1.8))
    ax = fig.add_subplot()
    image = ax.imshow(grid.to_numpy(float), aspect="auto", cmap="viridis")
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=45, ha="right")
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=6)
    fig.colorbar(image, ax=ax, label="mean rating")
    fig.tight_layout()
    return _render(fig)


def plot_votes_histogram(balance: pd.DataFrame) -> dict:
    """Histogram of votes per (item, condition) cell after screening."""
    fig = Figure(figsize=(6, 3.5))
    ax = fig.add_subplot()
    votes = balance["votes_kept"].to_numpy()
    ax.hist(votes, bins=np.arange(votes.min(), votes.max() + 2) - 0.5, color="#2a5d9f")
    ax.set_xlabel("votes per (item, condition) after screening")
    ax.set_ylabel("cells")
    fig.tight_layout()
    return _render(fig)
