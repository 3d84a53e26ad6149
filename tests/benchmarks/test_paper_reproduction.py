"""The paper-reproduction benchmark's re-timing of FCR as the paper's code recomputes:
`failed` holds batch-order positions, `prompt[i]` is read in pool order."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from paper_reproduction import paper_indexing_rps  # noqa: E402

from seqsched.predictors.basic import FixedPredictor  # noqa: E402
from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.traces.request import Trace  # noqa: E402


def _trace(outputs) -> Trace:
    return Trace(pd.DataFrame({"id": [f"r{i}" for i in range(len(outputs))],
                               "arrival_s": 0.0, "prompt_tokens": 10,
                               "output_tokens": outputs}), name="t")


def _binned(trace, pred):
    cfg = RunConfig(policy="binned", policy_params={"vbs": True, "fcr": True},
                    backend="paper-a100", max_new_tokens=512, seed=0)
    return simulate(trace, cfg, predictor=FixedPredictor(np.array(pred)))


def test_failed_position_picks_the_pool_order_prompt():
    # predicted order r1 (30) < r2 (35) < r0 (40) < r3 (60): one batch [r1, r2, r0, r3] at
    # cap 100 (bin 50's short batch joins bin 100); r0 (120 tokens) fails at position 2, so
    # the paper regenerates prompt[2] = r2 (40 tokens), not r0
    trace = _trace([120, 30, 40, 60])
    res = _binned(trace, [40, 30, 35, 60])
    rec = res.records.set_index("id")
    assert rec.loc["r0", "failed_attempts"] == 1 and rec["failed_attempts"].sum() == 1
    gen = res.steps[res.steps["kind"] == "generate"]
    assert len(gen) == 2                                 # the batch, then r0's recompute
    recompute_s = float(gen["end_s"].iloc[1] - gen["start_s"].iloc[1])
    vanilla = RunConfig(policy="vanilla", policy_params={"batch_size": 16}, predictor="none",
                        backend="paper-a100", max_new_tokens=512, seed=0)
    r2_alone = simulate(Trace(trace.df.iloc[[2]].reset_index(drop=True), name="s"), vanilla)
    want = 4 / (res.summary["makespan_s"] - recompute_s + r2_alone.summary["makespan_s"])
    assert paper_indexing_rps(trace, res, "paper-a100", 0) == pytest.approx(want, rel=1e-12)
    assert want > res.summary["throughput_rps"]          # 40 tokens instead of 120


def test_no_failure_is_the_plain_throughput():
    trace = _trace([20, 30, 40, 60])
    res = _binned(trace, [25, 35, 45, 70])
    assert res.records["failed_attempts"].sum() == 0
    assert paper_indexing_rps(trace, res, "paper-a100", 0) == pytest.approx(
        res.summary["throughput_rps"], rel=1e-12)
