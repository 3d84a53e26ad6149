"""Time series of a run over simulated time, so a user sees *when* it saturates.

On a regular grid of `POINTS` times from the first arrival to the last finish, per run label:

- `waiting`: requests arrived and not finished that are not in a running batch;
- `running`: rows of the steps running at that time, summed over replicas;
- `kv_used_tokens`: KV tokens held by those steps, summed over replicas;
- `in_system`: arrived and not finished (= waiting + running);
- `throughput_tok_s`: decode tokens per second of the steps running at that time (each step's
  `decode_tokens` spread over its duration, summed over replicas; a static batch counts its
  padded slots, as the step log does);
- `finished_rps`: requests finishing in that bin, per second;
- `slo_violations`: requests finishing in that bin that missed at least one SLO (0 without
  SLOs).

Everything is computed with searchsorted/bincount over the records and the step log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.analysis.saturation import in_system, running
from seqsched.analysis.slo import meets

POINTS = 400
SERIES = {"waiting": "waiting requests", "running": "running rows",
          "kv_used_tokens": "KV tokens in use", "throughput_tok_s": "decode tokens/s",
          "slo_violations": "SLO violations per bin"}


def timeseries(records: pd.DataFrame, steps: pd.DataFrame, slos=(),
               points: int = POINTS) -> pd.DataFrame:
    """One row per grid time (see the module docstring)."""
    start = float(records["arrival_s"].min())
    end = float(records["finish_s"].max())
    times = np.linspace(start, end, points)
    width = (end - start) / (points - 1) if end > start else 1.0
    finish = records["finish_s"].to_numpy(dtype=float)
    # bin k holds finishes in (times[k-1], times[k]]; bin 0 holds those at the start
    bins = np.clip(np.searchsorted(times, finish, side="left"), 0, points - 1)
    done = np.bincount(bins, minlength=points).astype(float)
    missed = ~meets(records, tuple(slos))["all"].to_numpy(dtype=bool)
    violations = np.bincount(bins, missed.astype(float), points)
    rows = running(steps, times, "rows")
    span = (steps["end_s"] - steps["start_s"]).to_numpy(dtype=float)
    rate = np.divide(steps["decode_tokens"].to_numpy(dtype=float), span,
                     out=np.zeros(len(steps)), where=span > 0)
    present = in_system(records, times).astype(float)
    return pd.DataFrame({
        "time_s": times, "in_system": present,
        "waiting": np.maximum(present - rows, 0.0), "running": rows,
        "kv_used_tokens": running(steps, times, "kv_used_tokens"),
        "throughput_tok_s": running(steps.assign(tok_s=rate), times, "tok_s"),
        "finished_rps": done / width,
        "slo_violations": violations})


def write_timeseries(folder: Path, results: dict, slos=()) -> None:
    """`timeseries.parquet` (all labels, a `label` column) and `timeseries.png`."""
    frames = [timeseries(r.records, r.steps, slos).assign(label=label)
              for label, r in results.items()]
    df = pd.concat(frames, ignore_index=True)
    df.to_parquet(folder / "timeseries.parquet", index=False)
    timeseries_plot(df, folder / "timeseries.png", with_slo=bool(slos))


def timeseries_plot(df: pd.DataFrame, path: Path, with_slo: bool) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    series = {k: v for k, v in SERIES.items() if with_slo or k != "slo_violations"}
    fig, axes = plt.subplots(len(series), 1, figsize=(8, 1.9 * len(series)), sharex=True)
    for ax, (col, label) in zip(np.atleast_1d(axes), series.items()):
        sns.lineplot(df, x="time_s", y=col, hue="label", ax=ax, linewidth=1,
                     legend=ax is np.atleast_1d(axes)[0])
        ax.set(ylabel=label, xlabel="simulated time (s)")
    first = np.atleast_1d(axes)[0]
    if first.get_legend() is not None:
        sns.move_legend(first, "upper left", bbox_to_anchor=(1.01, 1), fontsize=8, title=None)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
