"""Time series and cost/energy of a run, hand-computed on a small step log and record set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqsched.analysis.economics import GPUCost, cost_energy, cost_per_hour, load_prices
from seqsched.analysis.slo import parse_slos
from seqsched.analysis.timeseries import timeseries
from seqsched.common.errors import UserError

STEPS = pd.DataFrame(
    [(0, 0.0, 2.0, "generate", 2, 1, 0, 4, 100),
     (0, 2.0, 4.0, "generate", 1, 1, 0, 2, 50),
     (1, 0.5, 1.0, "predict", 9, 1, 0, 0, 999),       # a length query: not a running batch
     (1, 1.0, 3.0, "generate", 3, 1, 0, 6, 30)],
    columns=["replica", "start_s", "end_s", "kind", "rows", "iterations", "prefill_tokens",
             "decode_tokens", "kv_used_tokens"])
RECORDS = pd.DataFrame({"arrival_s": [0.0, 0.0, 1.0, 1.5], "first_scheduled_s": [0.0] * 4,
                        "first_token_s": [0.5, 0.5, 1.5, 2.0], "finish_s": [2.0, 4.0, 3.0, 4.0],
                        "generated_tokens": [3, 3, 2, 4]})


def test_timeseries_by_hand():
    ts = timeseries(RECORDS, STEPS, parse_slos(["e2e_p50=2.5s"]), points=5)
    np.testing.assert_allclose(ts["time_s"], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(ts["running"], [2, 5, 4, 1, 0])
    np.testing.assert_allclose(ts["in_system"], [2, 3, 3, 2, 0])
    np.testing.assert_allclose(ts["waiting"], [0, 0, 0, 1, 0])
    np.testing.assert_allclose(ts["kv_used_tokens"], [100, 130, 80, 50, 0])
    np.testing.assert_allclose(ts["throughput_tok_s"], [2, 5, 4, 1, 0])   # 4/2, 2/2, 6/2 per s
    np.testing.assert_allclose(ts["finished_rps"], [0, 0, 1, 1, 2])
    np.testing.assert_allclose(ts["slo_violations"], [0, 0, 0, 0, 1])     # e2e 4 > 2.5
    assert timeseries(RECORDS, STEPS, points=5)["slo_violations"].sum() == 0


def test_cost_and_energy_by_hand():
    prices = {"X": GPUCost(3.6, tdp_w=400.0, idle_w=100.0)}
    out = cost_energy(RECORDS, STEPS, "X", replicas=2, gpus_per_replica=2, prices=prices)
    # 4 GPUs for 4 s at $3.6/h; busy: replica 0 4 s, replica 1 2.5 s (the query included)
    assert out["gpus"] == 4 and out["cost_usd_per_hour"] == pytest.approx(14.4)
    assert out["cost_usd"] == pytest.approx(4 * 3.6 * 4 / 3600)
    assert out["usd_per_m_output_tokens"] == pytest.approx(4 * 3.6 * 4 / 3600 / 12 * 1e6)
    energy = 2 * (100 * 4 * 2 + 300 * 6.5)
    assert out["energy_j"] == pytest.approx(energy)
    assert out["j_per_output_token"] == pytest.approx(energy / 12)
    assert out["avg_power_w"] == pytest.approx(energy / 4)
    unknown = cost_energy(RECORDS, STEPS, "Y", 1, prices=prices)
    assert np.isnan(unknown["cost_usd"]) and np.isnan(cost_per_hour("Y", 1, prices))


def test_shipped_and_user_price_tables(tmp_path):
    shipped = load_prices()
    from seqsched.backends.specs import GPUS
    for gpu in GPUS:                     # every built-in GPU has a price and a power model
        c = shipped[gpu]
        assert c.usd_per_gpu_hour > 0 and 0 < c.idle_w < c.tdp_w
    assert shipped["L4"].usd_per_gpu_hour < shipped["A100-80GB"].usd_per_gpu_hour \
        < shipped["H100-SXM"].usd_per_gpu_hour
    csv = tmp_path / "p.csv"
    csv.write_text("gpu,usd_per_gpu_hour\nA100-80GB,1.5\n")
    table = load_prices(str(csv))
    assert table["A100-80GB"].usd_per_gpu_hour == 1.5 and np.isnan(table["A100-80GB"].tdp_w)
    with pytest.raises(UserError, match="no such file"):
        load_prices(str(tmp_path / "none.json"))
    bad = tmp_path / "bad.json"
    bad.write_text('{"gpus": {"A100-80GB": {"usd_per_gpu_hour": -1}}}')
    with pytest.raises(UserError, match=">= 0"):
        load_prices(str(bad))
