"""The sweep's outputs: sweep.csv read back, the terminal table, per-metric line plots and
report.md. An axis is anything with `key`, `values` and `numeric` (the app's GridAxis)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from seqsched.analysis.quality_map import quality_section

PLOT_METRICS = {
    "throughput_rps": "throughput (requests/s)",
    "e2e_s_p50": "p50 end-to-end latency (s)",
    "e2e_s_p99": "p99 end-to-end latency (s)",
    "ttft_s_p50": "p50 time to first token (s)",
}
TABLE_METRICS = {
    "throughput_rps": "req/s",
    "output_tokens_per_s": "out tok/s",
    "e2e_s_p50": "e2e p50 s",
    "e2e_s_p99": "e2e p99 s",
    "ttft_s_p50": "TTFT p50 s",
    "effective_token_ratio": "eff. ratio",
    "preemptions": "preempt",
    "slo_attainment": "SLO attain.",      # with --slo only
    "goodput_rps": "goodput req/s",
}


def read_sweep(path: Path) -> pd.DataFrame:
    """sweep.csv as a DataFrame, floats exact (pandas 3 parses round-trip by default)."""
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    return pd.read_csv(path, keep_default_na=False, na_values=[""], **exact)


def sweep_table(df: pd.DataFrame, axes: list) -> str:
    from seqsched.analysis.tables import github_table
    cols = ["policy"] + [a.key for a in axes] + [c for c in TABLE_METRICS if c in df]
    table = df[cols].rename(columns=TABLE_METRICS)
    return github_table(table)


def x_axis(axes: list):
    """The plots' x: the first numeric grid key, else the first key (as categories)."""
    return next((a for a in axes if a.numeric), axes[0])


def write_sweep_plots(folder: Path, df: pd.DataFrame, axes: list) -> list[str]:
    from seqsched.analysis.plots import sweep_lines
    x = x_axis(axes)
    rest = [a.key for a in axes if a is not x]
    style = None
    if rest:
        df = df.assign(_other=df[rest].astype(str).agg(
            lambda r: ", ".join(f"{k}={v}" for k, v in zip(rest, r)), axis=1))
        style = "_other"
    names = []
    for metric, ylabel in PLOT_METRICS.items():
        name = f"sweep_{metric}.png"
        sweep_lines(df, x.key, metric, ylabel, folder / name, hue="policy", style=style,
                    categorical=not x.numeric)
        names.append(name)
    return names


def write_sweep_report(folder: Path, title: str, df: pd.DataFrame, axes: list,
                       context: dict[str, str]) -> str:
    """Plots and report.md; returns the terminal table."""
    table = sweep_table(df, axes)
    plots = write_sweep_plots(folder, df, axes)
    x = x_axis(axes)
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items()]
    lines += ["", "## Results", "", table, "",
              f"Plots: each metric against `{x.key}`, one line per policy"
              + (" (line style: the other grid keys)." if len(axes) > 1 else "."), ""]
    lines += [f"![{name[6:-4]}]({name})" for name in plots]
    lines += quality_section(folder, df, axes)
    lines += ["", "## Files", "",
              "- `sweep.csv`: one row per point, in grid order: every RunConfig knob of the "
              "point, the trace options and all summary metrics (metric definitions as in "
              "`seqsched compare`'s report; latencies from arrival).",
              "- `sweep_<metric>.png`: the plots above."]
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    return table
