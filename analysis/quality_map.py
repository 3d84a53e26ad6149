"""The gain-vs-predictor-quality map: for a sweep over a predictor-quality key (the `quality`
predictor's `target_mae` / `target_tau`, or `noisy`'s `scale`) with `fcfs` among the
policies, each policy's gain over FCFS at the same grid point — mean and p99 latency cut,
throughput change — against predictor quality, one panel per load level (the first other
grid key, e.g. rate). Below saturation nothing waits, so order cannot matter and every gain
sits at 0: the no-gain regime shows as flat lines in the low-load panels.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

QUALITY_KEYS = ("predictor.target_mae", "predictor.target_tau", "predictor.scale")
BASELINE = "fcfs"
# metric -> (gain column, label); latency gains are the share cut, throughput the share added
GAINS = {"e2e_s_mean": ("gain_e2e_mean", "mean latency cut vs FCFS"),
         "e2e_s_p99": ("gain_e2e_p99", "p99 latency cut vs FCFS"),
         "throughput_rps": ("gain_throughput", "throughput gain vs FCFS")}


def quality_axis(axes: list):
    return next((a for a in axes if a.key in QUALITY_KEYS), None)


def gain_table(df: pd.DataFrame, axes: list) -> pd.DataFrame | None:
    """One row per non-baseline policy and grid point with its gains over FCFS; None when the
    sweep has no quality key or no fcfs."""
    if quality_axis(axes) is None or BASELINE not in set(df["policy"]):
        return None
    keys = [a.key for a in axes]
    base = df[df["policy"] == BASELINE][keys + list(GAINS)]
    out = df[df["policy"] != BASELINE][["policy", *keys, *GAINS]].merge(
        base, on=keys, suffixes=("", "_fcfs"), how="left")
    for metric, (col, _) in GAINS.items():
        ratio = out[metric] / out[f"{metric}_fcfs"]
        out[col] = ratio - 1.0 if metric == "throughput_rps" else 1.0 - ratio
    return out[["policy", *keys, *(c for c, _ in GAINS.values())]].reset_index(drop=True)


def write_quality_map(folder: Path, df: pd.DataFrame, axes: list) -> list[str]:
    """gain_vs_quality_<metric>.png per gain (and gain_vs_quality.csv); returns their names."""
    table = gain_table(df, axes)
    if table is None or table.empty:
        return []
    x = quality_axis(axes).key
    panel = next((a.key for a in axes if a.key != x), None)
    table.to_csv(folder / "gain_vs_quality.csv", index=False)
    names = []
    for col, label in GAINS.values():
        grid = sns.relplot(table, x=x, y=col, hue="policy", col=panel, kind="line",
                           markers=True, style="policy", dashes=False, height=3.4, aspect=1.1,
                           facet_kws={"sharey": True})
        for ax in grid.axes.flat:
            ax.axhline(0.0, color="0.5", lw=0.8, ls=":")
        grid.set_axis_labels(x, label)
        name = f"gain_vs_quality_{col[5:]}.png"
        grid.savefig(folder / name, dpi=120)
        plt.close(grid.figure)
        names.append(name)
    return names


def quality_section(folder: Path, df: pd.DataFrame, axes: list) -> list[str]:
    """report.md lines for the map (empty when the sweep is not a quality sweep)."""
    names = write_quality_map(folder, df, axes)
    if not names:
        return []
    from seqsched.analysis.tables import github_table
    table = gain_table(df, axes)
    lines = ["", "## Gain over FCFS vs predictor quality", "",
             f"Gains at the same grid point as fcfs (latency: share cut, throughput: share "
             f"added), x = `{quality_axis(axes).key}`, one panel per "
             f"`{next((a.key for a in axes if a is not quality_axis(axes)), '-')}`. "
             "Where nothing waits (below saturation) order cannot matter: gains stay at 0.", "",
             github_table(table), ""]
    lines += [f"![{n[:-4]}]({n})" for n in names]
    return lines
