"""Cost and energy of a run: $ per million output tokens and joules per output token.

The price per GPU-hour and the power model per GPU come from `figures/gpu_costs.json`
(derived, with sources, by scripts/derive_gpu_costs.py) or a user file (`--prices FILE`: the
same JSON, or a CSV with columns gpu, usd_per_gpu_hour and optionally tdp_w, idle_w).

A run holds replicas x GPUs-per-replica GPUs for its whole makespan (first arrival to last
finish), busy or not, as a rented deployment would: cost = GPUs x price x makespan. Energy per
GPU: idle x makespan + (TDP - idle) x busy seconds of its replica (from the step log), i.e.
power linear in the busy share.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.common.errors import UserError

DEFAULT_TABLE = Path(__file__).resolve().parent / "figures" / "gpu_costs.json"


@dataclass(frozen=True)
class GPUCost:
    usd_per_gpu_hour: float
    tdp_w: float = float("nan")
    idle_w: float = float("nan")


def _from_json(path: Path) -> dict[str, GPUCost]:
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = data.get("gpus", data) if isinstance(data, dict) else None
    if not isinstance(rows, dict):
        raise ValueError("expected {\"gpus\": {NAME: {\"usd_per_gpu_hour\": ...}}}")
    return {g: GPUCost(float(v["usd_per_gpu_hour"]), float(v.get("tdp_w", "nan")),
                       float(v.get("idle_w", "nan"))) for g, v in rows.items()}


def _from_csv(path: Path) -> dict[str, GPUCost]:
    df = pd.read_csv(path)
    for col in ("tdp_w", "idle_w"):
        if col not in df:
            df[col] = np.nan
    return {str(r.gpu): GPUCost(float(r.usd_per_gpu_hour), float(r.tdp_w), float(r.idle_w))
            for r in df.itertuples()}


@functools.cache
def load_prices(path: str | None = None) -> dict[str, GPUCost]:
    """GPU name -> GPUCost; `path` None reads the shipped table."""
    file = DEFAULT_TABLE if path is None else Path(path)
    if not file.is_file():
        raise UserError(f"--prices {file}: no such file; give a JSON or CSV price table "
                        "(columns gpu, usd_per_gpu_hour[, tdp_w, idle_w])")
    try:
        table = _from_csv(file) if file.suffix.lower() == ".csv" else _from_json(file)
    except (ValueError, KeyError, AttributeError, TypeError) as e:
        raise UserError(f"--prices {file}: not a price table ({e}); see "
                        "analysis/figures/gpu_costs.json for the shape") from None
    bad = [g for g, c in table.items() if not (np.isfinite(c.usd_per_gpu_hour)
                                               and c.usd_per_gpu_hour >= 0)]
    if bad:
        raise UserError(f"--prices {file}: price of {bad[0]} is not a number >= 0")
    return table


def cost_per_hour(gpu: str, gpus: int, prices: dict[str, GPUCost]) -> float:
    """$ per hour of `gpus` GPUs of type `gpu`; NaN when the table has no price for it."""
    c = prices.get(gpu)
    return float("nan") if c is None else c.usd_per_gpu_hour * gpus


def cost_energy(records: pd.DataFrame, steps: pd.DataFrame, gpu: str, replicas: int,
                gpus_per_replica: int = 1, prices: dict[str, GPUCost] | None = None
                ) -> dict[str, float]:
    """Cost and energy columns of a run's summary (NaN for a GPU the table lacks)."""
    prices = load_prices() if prices is None else prices
    c = prices.get(gpu, GPUCost(float("nan")))
    makespan = float(records["finish_s"].max() - records["arrival_s"].min())
    tokens = float(records["generated_tokens"].sum())
    gpus = replicas * gpus_per_replica
    busy = (steps["end_s"] - steps["start_s"]).groupby(steps["replica"]).sum()
    busy_s = float(busy.sum())
    cost = c.usd_per_gpu_hour * gpus * makespan / 3600.0
    energy = gpus_per_replica * (c.idle_w * makespan * replicas + (c.tdp_w - c.idle_w) * busy_s)
    per_token = tokens > 0
    return {
        "gpus": gpus,
        "cost_usd_per_hour": c.usd_per_gpu_hour * gpus,
        "cost_usd": cost,
        "usd_per_m_output_tokens": cost / tokens * 1e6 if per_token else float("nan"),
        "energy_j": energy,
        "avg_power_w": energy / makespan if makespan > 0 else float("nan"),
        "j_per_output_token": energy / tokens if per_token else float("nan"),
    }
