"""Run metrics, computed from RequestRecords and the step log (never accumulated ad hoc).

The paper's definitions (Zheng et al. 2023, src/benchmark.py): throughput = requests / wall
time; *average processed length* = mean over requests of the padded length of the batch that
produced the request's (final) output, counted as the paper's script counts it (generated
tokens + 1); *effective token ratio* = useful tokens / that padded
length summed; *failure ratio* (FCR recompute ratio) = share of requests recomputed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = {"mean": None, "p50": 50, "p90": 90, "p99": 99}
# summary metrics of the serving features (present only when the feature is on)
FEATURE_METRICS = ("prefix_cached_tokens", "prefix_hit_rate_tokens", "prefix_hit_rate_requests",
                   "swapped_tokens", "swap_s")


def _stats(prefix: str, values: np.ndarray) -> dict[str, float]:
    values = values[~np.isnan(values)]
    out = {}
    for label, q in QUANTILES.items():
        if len(values) == 0:
            out[f"{prefix}_{label}"] = float("nan")
        elif q is None:
            out[f"{prefix}_{label}"] = float(values.mean())
        else:
            out[f"{prefix}_{label}"] = float(np.percentile(values, q))
    return out


def summarize(records: pd.DataFrame, steps: pd.DataFrame, kv_capacity_tokens: int,
              replicas: int = 1) -> dict[str, float]:
    n = len(records)
    start = float(records["arrival_s"].min())
    makespan = float(records["finish_s"].max()) - start
    useful = records["generated_tokens"].to_numpy(dtype=float)
    # the paper's `length` (src/generate.py): tokens generated in the batch that produced the
    # final output, plus one
    slots = records["slot_tokens"].to_numpy(dtype=float) + 1
    slots_all = records["slot_tokens_all"].to_numpy(dtype=float)
    e2e = (records["finish_s"] - records["arrival_s"]).to_numpy(dtype=float)
    ttft = (records["first_token_s"] - records["arrival_s"]).to_numpy(dtype=float)
    queue = (records["first_scheduled_s"] - records["arrival_s"]).to_numpy(dtype=float)
    gen = records["generated_tokens"].to_numpy(dtype=float)
    decode_span = (records["finish_s"] - records["first_token_s"]).to_numpy(dtype=float)
    tpot = np.where(gen > 1, decode_span / np.maximum(gen - 1, 1), np.nan)
    gen_steps = steps[steps["kind"] == "generate"]
    steps = steps[steps["kind"] != "predict-cpu"]   # a host-CPU predictor's batches overlap
    durations = (steps["end_s"] - steps["start_s"]).to_numpy(dtype=float)
    busy = durations.sum()
    kv_util = (float((steps["kv_used_tokens"].to_numpy(dtype=float) * durations).sum()
                     / (busy * kv_capacity_tokens)) if busy > 0 else 0.0)
    out = {
        "requests": n,
        "makespan_s": makespan,
        "throughput_rps": n / makespan if makespan > 0 else float("nan"),
        "output_tokens_per_s": useful.sum() / makespan if makespan > 0 else float("nan"),
        "avg_processed_length": float(slots.mean()),
        "effective_token_ratio": float(useful.sum() / slots.sum()) if slots.sum() else 0.0,
        "compute_token_ratio": float(useful.sum() / slots_all.sum()) if slots_all.sum() else 0.0,
        "fcr_recompute_ratio": float((records["failed_attempts"] > 0).mean()),
        "wasted_tokens": int(records["wasted_tokens"].sum()),
        "recomputed_tokens": (int(records["recomputed_tokens"].sum())
                              if "recomputed_tokens" in records else 0),
        "preemptions": int(records["preemptions"].sum()),
        "truncated": int(records["truncated"].sum()),
        "batches": int(len(gen_steps)),
        "events": int(len(steps)),
        "kv_utilization": kv_util,
        "kv_peak_tokens": int(steps["kv_used_tokens"].max()) if len(steps) else 0,
        "busy_fraction": float(busy / (makespan * replicas)) if makespan > 0 else 0.0,
    }
    if "cached_tokens" in records:        # prefix caching (absent otherwise)
        cached = records["cached_tokens"].to_numpy(dtype=float)
        asked = (records["prompt_tokens"] + records["recomputed_tokens"]).to_numpy(dtype=float)
        out["prefix_cached_tokens"] = int(cached.sum())
        out["prefix_hit_rate_tokens"] = float(cached.sum() / asked.sum())
        out["prefix_hit_rate_requests"] = float((cached > 0).mean())
    if "swapped_tokens" in records:       # preemption=swap (absent otherwise)
        out["swapped_tokens"] = int(records["swapped_tokens"].sum())
        swaps = steps["kind"] == "swap"
        out["swap_s"] = float(durations[swaps.to_numpy()].sum())
    for prefix, values in (("e2e_s", e2e), ("ttft_s", ttft), ("tpot_s", tpot),
                           ("queue_s", queue)):
        out.update(_stats(prefix, values))
    return out


# The columns `compare` shows in the terminal, with their labels.
TABLE_COLUMNS = {
    "throughput_rps": "req/s",
    "output_tokens_per_s": "out tok/s",
    "avg_processed_length": "avg len",
    "effective_token_ratio": "eff. ratio",
    "fcr_recompute_ratio": "FCR",
    "e2e_s_mean": "e2e mean s",
    "e2e_s_p99": "e2e p99 s",
    "ttft_s_p50": "TTFT p50 s",
    "tpot_s_mean": "TPOT s",
    "preemptions": "preempt",
    # serving features: a column only when some run has them on
    "prefix_hit_rate_tokens": "cache hit",
    "swapped_tokens": "swapped tok",
    # --slo: a column only when SLOs were given (analysis/slo.py)
    "slo_attainment": "SLO attain.",
    "goodput_rps": "goodput req/s",
}
