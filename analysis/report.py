"""Terminal tables, CSV files and the Markdown report of a set of runs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
from seqsched.analysis.tables import github_table

from seqsched.analysis.csv_writer import write_csv
from seqsched.analysis.metrics import TABLE_COLUMNS
from seqsched.analysis.replicas import replica_markdown, replica_table, wants_replica_table


def summary_frame(results: dict) -> pd.DataFrame:
    """One row per run label, every summary metric as a column."""
    return pd.DataFrame([{"label": label, **r.summary} for label, r in results.items()])


def terminal_table(summary: pd.DataFrame, baseline: str | None = None) -> str:
    cols = ["label"] + [c for c in TABLE_COLUMNS if c in summary]
    table = summary[cols].rename(columns=TABLE_COLUMNS)
    if baseline is not None and baseline in set(summary["label"]):
        base = float(summary.loc[summary["label"] == baseline, "throughput_rps"].iloc[0])
        table.insert(2, f"x {baseline}", summary["throughput_rps"] / base)
    return github_table(table)


def write_run(folder: Path, label: str, result) -> None:
    """records (CSV), steps (Parquet) and the summary/config (JSON) of one run."""
    write_csv(result.records, folder / f"records_{label}.csv")   # = to_csv(index=False), faster
    result.steps.to_parquet(folder / f"steps_{label}.parquet", index=False)
    meta = {"label": label, "config": dataclasses.asdict(result.config),
            "summary": result.summary, "kv_capacity_tokens": result.kv_capacity_tokens}
    (folder / f"summary_{label}.json").write_text(json.dumps(meta, indent=1, default=str))
    if wants_replica_table(result.config):
        replica_table(result.records, result.steps, result.config.replicas).to_csv(
            folder / f"replicas_{label}.csv", index=False)


def write_report(folder: Path, title: str, results: dict, context: dict,
                 baseline: str | None = None) -> str:
    """summary.csv, plots and report.md; returns the terminal table."""
    # matplotlib/seaborn only when a plot is drawn (~0.5 s to import; a run without --out
    # draws none)
    from seqsched.analysis.plots import latency_cdfs, throughput_bars

    summary = summary_frame(results)
    summary.to_csv(folder / "summary.csv", index=False)
    records = pd.concat([r.records.assign(label=label) for label, r in results.items()])
    throughput_bars(summary, folder / "throughput.png")
    latency_cdfs(records, folder / "latency_cdf.png")
    table = terminal_table(summary, baseline)
    # a closed-loop client (--max-concurrency, sim/client.py) times from the send
    since = ("arrival (with --max-concurrency: the client's send, when a slot let the request "
             "go, as vLLM bench times it; records keep the trace's arrival as "
             "`client_arrival_s`)" if any("client_arrival_s" in r.records
                                          for r in results.values()) else "arrival")
    lines = [f"# {title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in context.items()]
    lines += ["", "## Results", "", table, "",
              "![throughput](throughput.png)", "", "![latency](latency_cdf.png)", "",
              "## Definitions", "",
              "- *avg len*: the paper's average processed length: padded length of the batch "
              "that produced each request's final output (+1, as the paper's script counts it), "
              "averaged over requests.",
              "- *eff. ratio*: the paper's effective token ratio, useful tokens / those slots.",
              "- *FCR*: share of requests recomputed after hitting their bin's cap.",
              f"- Latencies are from {since}; TTFT ends with the iteration that completes the "
              "prefill; TPOT = (finish - first token) / (tokens - 1).",
              "", "Per-run records: `records_<label>.csv`; step logs: `steps_<label>.parquet`; "
              "all metrics: `summary.csv`."]
    spread = {label: r for label, r in results.items() if wants_replica_table(r.config)}
    if spread:
        lines += ["", "## Replicas", "",
                  "Requests, prompt tokens, busy time, mean TTFT and prefix-cache hits per "
                  "replica (`replicas_<label>.csv`).", ""]
        for label, r in spread.items():
            lines += replica_markdown(label, replica_table(r.records, r.steps,
                                                           r.config.replicas))
    (folder / "report.md").write_text("\n".join(lines) + "\n")
    return table
