"""Simulated against measured: per-request latencies and the error table of a replayed run.

Definitions (vLLM's `vllm bench serve`, vllm/benchmarks/serve.py `calculate_metrics`):
TTFT = first token - arrival; end-to-end = last token - arrival (a run whose clock starts at the
engine's receipt, the LLMServingSim layout's `queued_ts`, is compared with the simulated
receipt: `engine_receipt`); TPOT = (end-to-end - TTFT)
/ (output tokens - 1), over requests with more than one output token; ITL = the gaps between
consecutive tokens, pooled over requests. Where per-token times are not recorded (the
simulator's events, the LLMServingSim layout) each request contributes its mean gap (its
TPOT) once per gap, so the ITL mean is exact and its percentiles are of per-request means.
Throughput = requests / (last finish - first arrival).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

LATENCY_METRICS = ("ttft", "tpot", "itl", "e2e")
STATS = ("mean", "p50", "p90", "p99")
ERROR_COLUMNS = ["metric", "simulated", "measured", "error_pct"]


def sim_latencies(records: pd.DataFrame, start: np.ndarray | None = None) -> pd.DataFrame:
    """Per-request latencies (s) of a simulated run's records, in the measured frame's shape;
    TTFT and end-to-end count from `start` (default: each request's arrival; a run timed from
    the engine's receipt passes `engine_receipt`)."""
    t0 = records["arrival_s"].to_numpy(float) if start is None else np.asarray(start, float)
    return with_tpot(pd.DataFrame({
        "id": records["id"].to_numpy(), "arrival_s": records["arrival_s"].to_numpy(float),
        "prompt_tokens": records["prompt_tokens"].to_numpy(np.int64),
        "output_tokens": records["generated_tokens"].to_numpy(np.int64),
        "ttft_s": records["first_token_s"].to_numpy(float) - t0,
        "e2e_s": records["finish_s"].to_numpy(float) - t0,
        "itls": [None] * len(records)}))


def engine_receipt(records: pd.DataFrame, steps: pd.DataFrame) -> np.ndarray:
    """When each request would have reached vLLM's scheduler (its `queued_ts`): the engine
    core reads new requests between steps (`EngineCoreProc.run_busy_loop`: the input queue,
    then one step, vllm/v1/engine/core.py), so a request that arrives while its replica runs a
    step is read when that step ends, and one that reaches an idle replica when it is first
    scheduled (at once; at a lockstep round's end, after vLLM's dummy pass)."""
    out = records["first_scheduled_s"].to_numpy(float).copy()
    arrival = records["arrival_s"].to_numpy(float)
    replica = records["replica"].to_numpy()
    steps = steps[steps["kind"] != "predict-cpu"]      # a host-side predictor runs beside
    for r in np.unique(replica):
        mine = steps[steps["replica"] == r].sort_values("start_s", kind="stable")
        start, end = mine["start_s"].to_numpy(float), mine["end_s"].to_numpy(float)
        if not len(start):
            continue
        idx = np.flatnonzero(replica == r)
        j = np.searchsorted(start, arrival[idx], side="right") - 1
        inside = (j >= 0) & (arrival[idx] < end[np.clip(j, 0, None)])
        out[idx] = np.where(inside, np.minimum(out[idx], end[np.clip(j, 0, None)]), out[idx])
    return out


def with_tpot(df: pd.DataFrame) -> pd.DataFrame:
    gaps = df["output_tokens"].to_numpy(float) - 1
    tpot = np.where(gaps > 0, (df["e2e_s"] - df["ttft_s"]).to_numpy(float)
                    / np.maximum(gaps, 1), np.nan)
    return df.assign(tpot_s=tpot)


def itl_values(df: pd.DataFrame) -> np.ndarray:
    """Every inter-token gap (s): the recorded ones where a request has them, else its TPOT
    once per gap."""
    parts = []
    for itls, tpot, out in zip(df["itls"], df["tpot_s"], df["output_tokens"]):
        if itls is not None and len(itls):
            parts.append(np.asarray(itls, dtype=float))
        elif out > 1:
            parts.append(np.full(int(out) - 1, tpot))
    return np.concatenate(parts) if parts else np.array([])


def _stats(values: np.ndarray) -> dict[str, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return dict.fromkeys(STATS, float("nan"))
    return {"mean": float(values.mean()), "p50": float(np.percentile(values, 50)),
            "p90": float(np.percentile(values, 90)), "p99": float(np.percentile(values, 99))}


def run_metrics(df: pd.DataFrame) -> dict[str, float]:
    """metric name -> value: latencies in ms, throughput in requests/s and output tokens/s."""
    df = df if "tpot_s" in df else with_tpot(df)
    out = {}
    series = {"ttft": df["ttft_s"].to_numpy(float), "tpot": df["tpot_s"].to_numpy(float),
              "itl": itl_values(df), "e2e": df["e2e_s"].to_numpy(float)}
    for name in LATENCY_METRICS:
        for stat, v in _stats(series[name]).items():
            out[f"{name}_{stat}_ms"] = 1000 * v
    span = float((df["arrival_s"] + df["e2e_s"]).max() - df["arrival_s"].min())
    out["throughput_rps"] = len(df) / span if span > 0 else float("nan")
    out["output_tokens_per_s"] = float(df["output_tokens"].sum()) / span if span > 0 \
        else float("nan")
    return out


def error_table(simulated: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """`metric,simulated,measured,error_pct` with error = 100 (sim - measured) / measured."""
    sim, meas = run_metrics(simulated), run_metrics(measured)
    rows = []
    for key, m in meas.items():
        s = sim[key]
        err = 100 * (s - m) / abs(m) if m and np.isfinite(m) and np.isfinite(s) else float("nan")
        rows.append({"metric": key, "simulated": s, "measured": m, "error_pct": err})
    return pd.DataFrame(rows, columns=ERROR_COLUMNS)


def paired(simulated: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """One row per request: measured and simulated TTFT / TPOT / end-to-end side by side."""
    cols = ["id", "prompt_tokens", "output_tokens", "ttft_s", "tpot_s", "e2e_s"]
    m = (measured if "tpot_s" in measured else with_tpot(measured))[cols]
    s = (simulated if "tpot_s" in simulated else with_tpot(simulated))[cols[:1] + cols[3:]]
    return m.merge(s, on="id", suffixes=("_measured", "_simulated"))


def sim_timeseries(records: pd.DataFrame, steps: pd.DataFrame, capacity_tokens: int,
                   ticks: np.ndarray) -> pd.DataFrame:
    """Running and waiting requests and KV use (% of capacity) at each tick (s), as a
    per-second server log samples them: running = scheduled and not finished, waiting =
    arrived and not yet scheduled."""
    arr = records["arrival_s"].to_numpy(float)
    sched = records["first_scheduled_s"].to_numpy(float)
    fin = records["finish_s"].to_numpy(float)
    t = np.asarray(ticks, dtype=float)[:, None]
    running = ((sched <= t) & (fin > t)).sum(axis=1)
    waiting = ((arr <= t) & (sched > t)).sum(axis=1)
    kv = np.zeros(len(ticks))
    if len(steps):
        steps = steps.sort_values("start_s", kind="stable")
        start = steps["start_s"].to_numpy(float)
        end = steps["end_s"].to_numpy(float)
        idx = np.searchsorted(start, np.asarray(ticks, float), side="right") - 1
        inside = (idx >= 0) & (end[np.clip(idx, 0, None)] > ticks)
        used = steps["kv_used_tokens"].to_numpy(float)
        kv = np.where(inside, used[np.clip(idx, 0, None)], 0.0) / capacity_tokens * 100
    return pd.DataFrame({"t": ticks, "running": running, "waiting": waiting,
                         "kv_cache_pct": kv})
