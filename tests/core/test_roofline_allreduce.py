"""The roofline's measured all-reduce (backends/allreduce_table.py): log-log interpolation of
a (bytes, us) table, used at TP > 1 for GPUs with measurements; TP1, GPUs without data, TP
degrees outside the table and presets keep the ring model."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from seqsched.app.run import RunConfig, build_cost_model
from seqsched.backends.allreduce_table import allreduce_seconds, measured_allreduce
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.specs import get_gpu, get_model

TABLE = ((1000.0, 4000.0), (10.0, 20.0))      # time ~ sqrt(bytes) between the two points


def test_interpolation_is_log_log_with_a_floor_and_a_bandwidth_tail():
    got = allreduce_seconds([500.0, 1000.0, 2000.0, 4000.0, 8000.0], TABLE) * 1e6
    # 2000 B: halfway in log bytes -> geometric mean of 10 and 20 us; below: the floor;
    # above: the last time scaled by bytes
    assert got == pytest.approx([10.0, 10.0, math.sqrt(200.0), 20.0, 40.0], rel=1e-12)


def test_roofline_decode_uses_the_table_per_layer_and_all_reduce():
    g, m = get_gpu("H100-SXM"), get_model("llama-3-8b")       # d_model 4096, 32 layers, bf16
    # the logits all-gather priced alike on both sides (its own table): only the all-reduce
    ring = RooflineCostModel(g, m, tp=2, allgather_us=TABLE)
    measured = replace(ring, allreduce_us=TABLE)
    # 1 decode row: a message of 4096 x 2 B = 8192 B, above the table: 20 us x 8192 / 4000
    per_ring = 2 * 0.5 * 8192 / 450e9 + 5e-6
    per_meas = 20e-6 * 8192 / 4000
    t_ring, t_meas = ring.decode_times(1, 100, 3), measured.decode_times(1, 100, 3)
    assert t_meas - t_ring == pytest.approx(np.full(3, 2 * 32 * (per_meas - per_ring)),
                                            rel=1e-9)


def test_builtin_table_matches_its_measurement_and_is_used_outside_presets():
    table = measured_allreduce("RTX-PRO-6000", 2)
    i = table[0].index(16777216.0)                  # 8M bf16 elements, measured 1117.59 us
    assert table[1][i] == pytest.approx(1117.59, abs=0.01)
    assert allreduce_seconds(16777216.0, table) == pytest.approx(1117.59e-6, abs=1e-8)
    cost = build_cost_model(RunConfig(gpu="RTX-PRO-6000", model="qwen3-32b", tp=2,
                                      profile="roofline"))
    assert cost.allreduce_us == table
    # Qwen3-32B, 2048 tokens: 2048 x 5120 x 2 B = 21 MB; the measured kernel is ~4x the ring
    # over 64 GB/s PCIe (RESULTS.md: 1.39 ms measured inside vLLM)
    per = cost._allreduce(2048.0) / (2 * 64)
    ring = replace(cost, allreduce_us=None)._allreduce(2048.0) / (2 * 64)
    assert 1.2e-3 < per < 1.6e-3 and 3.5 < per / ring < 4.5
    assert build_cost_model(RunConfig(backend="paper-a100", tp=2)).allreduce_us is None


def test_tp1_no_data_and_tp_outside_the_table_keep_the_ring():
    assert measured_allreduce("RTX-PRO-6000", 4) is None          # measured at 2 GPUs only
    assert measured_allreduce("L4", 2) is None
    assert measured_allreduce("RTX-PRO-6000", 1) is None
    for gpu, tp in (("RTX-PRO-6000", 1), ("L4", 2), ("RTX-PRO-6000", 4), ("H100-PCIe", 2)):
        cost = build_cost_model(RunConfig(gpu=gpu, model="llama-3.1-8b", tp=tp,
                                          profile="roofline"))
        assert cost.allreduce_us is None
        # the same model but its kernel shape (backends/roofline_shape.py), ring all-reduce
        plain = RooflineCostModel(get_gpu(gpu), get_model("llama-3.1-8b"), tp=tp,
                                  flops_efficiency=cost.flops_efficiency,
                                  bandwidth_efficiency=cost.bandwidth_efficiency,
                                  shape=cost.shape, allgather_us=cost.allgather_us)
        assert np.array_equal(cost.decode_times(4, 400, 5), plain.decode_times(4, 400, 5))
        assert cost.prefill_time([300], [0]) == plain.prefill_time([300], [0])
