"""Per-replica load and prefix-cache hit rate: how a router spread the work.

Written (`replicas_<label>.csv` and a section of report.md) for runs with more than one
replica that use a load- or cache-aware router, prefix caching or disaggregation; other
runs' output folders stay as they were.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from seqsched.analysis.tables import github_table

SMART_ROUTERS = ("power-of-two", "prefix-aware")


def wants_replica_table(config) -> bool:
    return config.replicas > 1 and (config.router in SMART_ROUTERS
                                    or bool(getattr(config, "prefix_caching", False))
                                    or getattr(config, "prefill_replicas", 0) > 0)


def replica_table(records: pd.DataFrame, steps: pd.DataFrame, replicas: int) -> pd.DataFrame:
    """One row per replica: requests and their share, prompt tokens, busy seconds, mean
    TTFT, and with prefix caching the cached tokens and token hit rate."""
    idx = pd.Index(range(replicas), name="replica")
    g = records.groupby("replica")
    out = pd.DataFrame(index=idx)
    out["requests"] = g.size().reindex(idx, fill_value=0)
    out["share"] = out["requests"] / max(len(records), 1)
    out["prompt_tokens"] = g["prompt_tokens"].sum().reindex(idx, fill_value=0)
    busy = (steps["end_s"] - steps["start_s"]).groupby(steps["replica"]).sum()
    out["busy_s"] = busy.reindex(idx, fill_value=0.0)
    ttft = records["first_token_s"] - records["arrival_s"]
    out["ttft_mean_s"] = ttft.groupby(records["replica"]).mean().reindex(idx)
    if "cached_tokens" in records:
        cached = g["cached_tokens"].sum().reindex(idx, fill_value=0)
        asked = (records["prompt_tokens"] + records["recomputed_tokens"]).groupby(
            records["replica"]).sum().reindex(idx, fill_value=0)
        out["cached_tokens"] = cached
        out["hit_rate_tokens"] = np.where(asked > 0, cached / asked.where(asked > 0, 1), 0.0)
    return out.reset_index()


def replica_markdown(label: str, table: pd.DataFrame) -> list[str]:
    return [f"### {label}", "", github_table(table), ""]
