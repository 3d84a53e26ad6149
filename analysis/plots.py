"""Seaborn plots of one or several runs."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402


def throughput_bars(summary: pd.DataFrame, path: Path) -> None:
    """Bar chart of requests/s and effective token ratio per run label."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    sns.barplot(summary, x="label", y="throughput_rps", ax=axes[0], color="#4C72B0")
    axes[0].set(xlabel="", ylabel="throughput (requests/s)")
    sns.barplot(summary, x="label", y="effective_token_ratio", ax=axes[1], color="#55A868")
    axes[1].set(xlabel="", ylabel="effective token ratio")
    for ax in axes:
        ax.tick_params(axis="x", rotation=30)
        for c in ax.containers:
            ax.bar_label(c, fmt="%.2f", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_cdfs(records: pd.DataFrame, path: Path) -> None:
    """ECDFs of end-to-end latency and TTFT per run label (`records` has a `label` column)."""
    df = records.assign(e2e_s=records["finish_s"] - records["arrival_s"],
                        ttft_s=records["first_token_s"] - records["arrival_s"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    sns.ecdfplot(df, x="e2e_s", hue="label", ax=axes[0])
    axes[0].set(xlabel="end-to-end latency (s)", ylabel="share of requests")
    sns.ecdfplot(df, x="ttft_s", hue="label", ax=axes[1], legend=False)
    axes[1].set(xlabel="time to first token (s)", ylabel="")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sweep_lines(df: pd.DataFrame, x: str, y: str, ylabel: str, path: Path, *,
                hue: str = "policy", style: str | None = None,
                categorical: bool = False) -> None:
    """One sweep metric against a grid key, one line per `hue` (and `style`) value."""
    data = df.assign(**{x: df[x].astype(str)}) if categorical else df
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    sns.lineplot(data, x=x, y=y, hue=hue, style=style, markers=True, dashes=style is not None,
                 ax=ax)
    ax.set(xlabel=x, ylabel=ylabel)
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title=None)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
