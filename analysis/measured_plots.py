"""Seaborn figures of a replayed run: simulated beside measured."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

PANELS = (("ttft_s", "TTFT (s)"), ("tpot_s", "TPOT (s)"), ("e2e_s", "end-to-end latency (s)"))


def scatter(pairs: pd.DataFrame, path: Path, title: str) -> Path:
    """Per request: simulated against measured TTFT, TPOT and end-to-end, with y = x."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, (col, label) in zip(axes, PANELS):
        x = pairs[f"{col}_measured"].to_numpy(float)
        y = pairs[f"{col}_simulated"].to_numpy(float)
        sns.scatterplot(x=x, y=y, s=12, alpha=0.6, edgecolor=None, ax=ax)
        finite = np.isfinite(x) & np.isfinite(y)
        hi = float(max(x[finite].max(), y[finite].max())) * 1.05 if finite.any() else 1.0
        ax.plot([0, hi], [0, hi], color="grey", lw=1, ls="--")
        ax.set(xlim=(0, hi), ylim=(0, hi), xlabel=f"measured {label}",
               ylabel=f"simulated {label}")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def cdfs(simulated: pd.DataFrame, measured: pd.DataFrame, path: Path) -> Path:
    """ECDF overlays of TTFT, TPOT and end-to-end latency."""
    from seqsched.analysis.measured import with_tpot

    both = pd.concat([with_tpot(simulated).assign(run="simulated"),
                      with_tpot(measured).assign(run="measured")], ignore_index=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, (ax, (col, label)) in enumerate(zip(axes, PANELS)):
        sns.ecdfplot(both, x=col, hue="run", ax=ax, legend=i == 0)
        ax.set(xlabel=label, ylabel="share of requests" if i == 0 else "")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def timeseries(sim: pd.DataFrame, measured: pd.DataFrame, path: Path) -> Path:
    """Running and waiting requests and KV-cache use per second, simulated beside measured."""
    both = pd.concat([sim.assign(run="simulated"), measured.assign(run="measured")],
                     ignore_index=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, (ax, col, label) in enumerate(zip(axes, ("running", "waiting", "kv_cache_pct"),
                                             ("running requests", "waiting requests",
                                              "KV cache use (%)"))):
        sns.lineplot(both, x="t", y=col, hue="run", ax=ax, legend=i == 0)
        ax.set(xlabel="time since start (s)", ylabel=label)
        if measured[col].isna().all():          # the recorder left it unfilled
            ax.set_title("measured: not recorded", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
