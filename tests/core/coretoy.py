"""Shared helpers for the core tests: a linear toy cost model simple enough to compute by
hand, a trace builder, a fixed predictor and small-KV run configurations.

Toy cost model (seconds per iteration; rows = every row in the iteration):

    iteration = C + D * rows + B * (prompt tokens processed in the iteration)
    C = 1.0, D = 0.5, B = 0.125

so a pure-decode iteration of r rows costs 1 + 0.5 r, and a static prefill of B rows padded
to width W costs 1 + 0.5 B + 0.125 B W. All constants are powers of two: every time below is
exact in binary floating point.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.specs import get_gpu, get_model
from seqsched.predictors.base import PredictorCost
from seqsched.app.run import RunConfig, simulate
from seqsched.traces.request import Trace

C, D, B = 1.0, 0.5, 0.125


class ToyCost:
    name = "toy"

    def prefill_time(self, new_tokens, past_tokens, decode_rows=0, decode_context=0):
        new = np.asarray(new_tokens)
        return C + D * (len(new) + decode_rows) + B * float(new.sum())

    def decode_times(self, rows, context_sum, iterations):
        return np.full(iterations, C + D * rows, dtype=float)


def toy_executor() -> CostModelExecutor:
    return CostModelExecutor(ToyCost())


def trace(rows, **extra) -> Trace:
    """rows: (id, arrival_s, prompt_tokens, output_tokens) tuples."""
    df = pd.DataFrame({
        "id": [r[0] for r in rows],
        "arrival_s": [float(r[1]) for r in rows],
        "prompt_tokens": [r[2] for r in rows],
        "output_tokens": [r[3] for r in rows],
    })
    for k, v in extra.items():
        df[k] = v
    return Trace(df)


class FixedPredictor:
    """Predicts the given lengths (by trace order), at no cost."""

    name = "fixed"

    def __init__(self, values):
        self.values = np.asarray(values, dtype=np.int64)

    def predict(self, t):
        assert len(t) == len(self.values)
        return self.values.copy()

    def cost(self, t):
        return PredictorCost()


def run_toy(rows, policy, predicted=None, **config):
    """Simulate `rows` under `policy` with the toy cost model on llama-7b / A100-80GB (KV of
    ~110k tokens: never binding for the hand cases)."""
    cfg = RunConfig(policy=policy, **config)
    pred = FixedPredictor(predicted) if predicted is not None else None
    return simulate(trace(rows), cfg, predictor=pred, executor=toy_executor())


def rec(result, rid):
    """The record of request `rid` as a dict."""
    r = result.records
    row = r[r["id"] == rid]
    assert len(row) == 1, f"{rid} appears {len(row)} times in records"
    return row.iloc[0].to_dict()


def tiny_fraction(capacity_tokens: int, gpu: str = "A100-80GB") -> float:
    """memory_fraction that leaves exactly `capacity_tokens` of KV cache for the `tiny` model
    (2 layers x 32 kv dims x 2 (K,V) x 2 bytes = 256 bytes per token)."""
    g, m = get_gpu(gpu), get_model("tiny")
    return (m.weight_bytes + capacity_tokens * m.kv_bytes_per_token
            + m.kv_bytes_per_token / 2) / g.memory_bytes


def small_kv_config(capacity_tokens: int, **kw) -> RunConfig:
    """A KV cache of `capacity_tokens` rounded down to whole blocks, pinned with kv_blocks
    (vLLM's sizing of continuous policies also reserves an activation peak, so a memory
    fraction no longer maps to an exact capacity)."""
    return RunConfig(model="tiny", kv_blocks=capacity_tokens // kw.get("block_size", 16), **kw)
