"""Outputs of `seqsched capacity` and `seqsched plan`: tables, the attainment-vs-rate curve,
the Pareto plot of cost against attainment / p99 latency, report.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from seqsched.analysis.tables import github_table


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def capacity_curve(probes: pd.DataFrame, path: Path, target: float | None) -> None:
    """Joint SLO attainment (or, without SLOs, waiting-queue growth) against rate, per policy."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    y = "slo_attainment" if "slo_attainment" in probes else "queue_growth"
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    sns.lineplot(probes.sort_values("rate_rps"), x="rate_rps", y=y, hue="policy",
                 style="passed", markers=True, dashes=False, ax=ax)
    if target is not None and y == "slo_attainment":
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.set(xlabel="mean arrival rate (requests/s)",
           ylabel="requests within every SLO" if y == "slo_attainment"
           else "waiting-queue growth / arrival rate")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    _save(fig, path)


def pareto_front(df: pd.DataFrame, cost: str, quality: str, higher_better: bool) -> pd.Series:
    """True for rows no other row beats on both cost (lower) and quality."""
    q = df[quality] if higher_better else -df[quality]
    c = df[cost]
    return pd.Series([not ((c <= c[i]) & (q >= q[i]) & ((c < c[i]) | (q > q[i]))).any()
                      for i in df.index], index=df.index)


def pareto_plot(df: pd.DataFrame, path: Path, latency: str) -> None:
    """Cost per hour against joint attainment and against p99 latency; the front joined."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    panels = [(q, hb) for q, hb in (("slo_attainment", True), (latency, False)) if q in df]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.0), squeeze=False)
    for ax, (quality, higher) in zip(axes[0], panels):
        sns.scatterplot(df, x="cost_usd_per_hour", y=quality, hue="policy", style="gpu",
                        ax=ax, s=40)
        front = df[pareto_front(df, "cost_usd_per_hour", quality, higher)]
        front = front.sort_values("cost_usd_per_hour")
        ax.plot(front["cost_usd_per_hour"], front[quality], color="black", linewidth=1,
                label="Pareto front")
        ax.set(xlabel="cost ($/hour)", ylabel=quality)
        sns.move_legend(ax, "best", fontsize=7)
    _save(fig, path)


def table(df: pd.DataFrame, columns: dict[str, str]) -> str:
    cols = [c for c in columns if c in df]
    return github_table(df[cols].rename(columns=columns), digits=4)


def write_markdown(folder: Path, title: str, context: dict, body: list[str]) -> None:
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items()]
    (folder / "report.md").write_text("\n".join(lines + [""] + body) + "\n")
