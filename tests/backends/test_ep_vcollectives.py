"""vLLM's EP dispatch / combine when DP ranks hold unequal token counts (backends/moe_profile.py
`comm_us(largest=...)`): `all_gatherv` / `reduce_scatterv` run one broadcast / reduce per root
rank, so the largest rank's chunk sets the time; equal counts (DP-padded steps) keep the
collective at the gathered sum. Hand-computed, ring model and measured tables."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from seqsched.backends.moe_profile import expert_parallel, moe_from_dict
from seqsched.sim.lockstep import DPGroup, DPPadding

ROWS = [{"experts": 1, "tokens": [1, 100], "us": [5, 5]},
        {"experts": 2, "tokens": [1, 100], "us": [10, 10]}]


def ring_table():
    table = moe_from_dict({"count": 2, "n_experts": 4, "top_k": 2, "rows": ROWS})
    return expert_parallel(table, ep=2, gather=2, link_gbs=1.0, latency_us=3.0, d_model=100)


def test_unequal_ranks_pay_for_the_largest_chunk_ring_model():
    ep = ring_table()
    # 10 + 10 gathered (equal): (2 - 1)/2 x 20 x 408 bytes at 1 GB/s = 4.08 us + 2 x 3 us
    assert ep.comm_us(10.0, gathered=20.0, largest=10.0) == pytest.approx(6 + 4.08)
    assert ep.comm_us(10.0, gathered=20.0) == pytest.approx(6 + 4.08)       # no largest: as before
    # 18 + 2 (unequal): as an all-gather of two 18-token chunks, 36 x 408 / 2 = 7.344 us
    assert ep.comm_us(2.0, gathered=20.0, largest=18.0) == pytest.approx(6 + 7.344)
    assert ep.comm_us(18.0, gathered=20.0, largest=18.0) == pytest.approx(6 + 7.344)
    # the expert kernels still see the 20 gathered tokens: only the communication moves
    diff = ep.seconds(2.0, 20.0, 18.0) - ep.seconds(2.0, 20.0)
    assert diff == pytest.approx(2 * (7.344 - 4.08) * 1e-6)


def test_unequal_ranks_look_up_the_measured_tables_at_gather_x_largest():
    ag = {"bytes": [1000.0, 100000.0], "us": [10.0, 1000.0]}       # 10 ns / byte
    rs = {"bytes": [1000.0, 100000.0], "us": [20.0, 2000.0]}       # 20 ns / byte
    table = moe_from_dict({"count": 1, "n_experts": 4, "top_k": 2, "rows": ROWS,
                           "ep_comm": {"by_gpus": {"2": {"all_gather": ag,
                                                          "reduce_scatter": rs}}}})
    ep = expert_parallel(table, ep=2, gather=2, link_gbs=1.0, latency_us=3.0, d_model=100)
    # equal 10 + 10: all-gather 20 x 208 = 4,160 bytes (41.6 us), reduce-scatter 20 x 200
    # = 4,000 bytes (80 us)
    assert ep.comm_us(10.0, 20.0, 10.0) == pytest.approx(41.6 + 80.0)
    # 15 + 5: 2 x 15 = 30 tokens' bytes, 6,240 (62.4 us) and 6,000 (120 us)
    assert ep.comm_us(5.0, 20.0, 15.0) == pytest.approx(62.4 + 120.0)
    assert ep.comm_us(np.array([5.0, 15.0]), 20.0, 15.0) == pytest.approx([182.4] * 2)


def test_no_expert_parallelism_no_communication_whatever_the_split():
    table = moe_from_dict({"count": 2, "n_experts": 4, "top_k": 2, "rows": ROWS})
    assert table.comm_us(2.0, 20.0, 18.0) == 0.0
    solo = expert_parallel(table, ep=2, gather=1, link_gbs=1.0, latency_us=3.0, d_model=100)
    # EP without DP (gather 1): no group counts, the rank's own tokens as before
    assert solo.comm_us(10.0, 20.0, 18.0) == solo.comm_us(10.0)


def test_a_lockstep_round_passes_the_largest_padded_count():
    """Two ranks: within the graphs both are padded to the largest bucket (equal counts);
    past them each keeps its own count and the largest is the bigger rank's."""
    seen = []

    def timing(p, g, m):
        seen.append((p, g, m))
        return 1.0
    env = simpy.Environment()
    group = DPGroup(env, [0, 1], DPPadding((1, 2, 4, 8)), {0: timing, 1: timing})

    def member(key, tokens):
        yield from group.step(99.0, key, tokens, timing)
    env.process(member(0, 3))
    env.process(member(1, 6))
    env.run()
    assert seen[-2:] == [(8, 16, 8), (8, 16, 8)]            # padded to 8: equal
    seen.clear()
    env = group.env = simpy.Environment()
    group._round = None
    env.process(member(0, 3))
    env.process(member(1, 20))                                  # past the graphs: no padding
    env.run()
    assert seen[-2:] == [(3, 23, 20), (20, 23, 20)]
