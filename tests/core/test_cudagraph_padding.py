"""vLLM's CUDA-graph padding on one GPU (backends/cuda_graphs.py): a step of at most the
largest capture size runs its token-linear kernels over the next capture size. Hand-computed
on the tiny kernel profile of test_kernel_profile (mlp: 4 uses x (10 + 1 us/token), embedding
3 us flat, so one padded token costs exactly 4 us), on the roofline's bounds, and end to end on
both engines; the recorded run's sizes and mode, the switch and --enforce-eager."""

from __future__ import annotations

import numpy as np
import pytest

from seqsched.app.run import RunConfig, simulate
from seqsched.app.serving_setup import dp_padding, graph_padded
from seqsched.backends.cuda_graphs import (GraphPaddedCost, GraphPadding, graph_modes,
                                           graph_padding, pad_cost)
from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.specs import get_gpu, get_model

from coretoy import rec, trace
from test_kernel_profile import tiny

US = 1e-6
SIZES = (1, 2, 4, 8, 16, 24, 32, 100)


def test_padding_follows_vllm_dispatch():
    pad = GraphPadding(SIZES)
    assert [pad.padded(n, True) for n in (1, 2, 3, 5, 9, 17, 33, 100)] == \
        [1, 2, 4, 8, 16, 24, 100, 100]
    assert pad.padded(101, False) == 101            # above the largest size: no graph
    decode_only = GraphPadding(SIZES, *graph_modes([2, 0]))        # FULL_DECODE_ONLY
    assert decode_only.padded(3, True) == 4 and decode_only.padded(3, False) == 3
    assert graph_modes(None) == (True, True) and graph_modes(0) == (False, False)
    assert not GraphPadding(SIZES, *graph_modes(0)).active


def test_sizes_default_recorded_and_eager():
    default = graph_padding(128, 2048)
    assert default.sizes[:5] == (1, 2, 4, 8, 16) and default.sizes[-1] == 256
    recorded = graph_padding(128, 64, recorded={"cudagraph_capture_sizes": [128, 1, 64, 2, 64],
                                                "cudagraph_mode": [2, 1]})
    assert recorded.sizes == (1, 2, 64)             # deduplicated, sorted, <= the budget
    assert graph_padding(128, 2048, enforce_eager=True) == GraphPadding()


def test_decode_step_pays_the_padded_tokens_dense_time():
    m = kernel_profile_from_dict(tiny())
    padded = pad_cost(m, GraphPadding(SIZES))
    assert isinstance(padded, GraphPaddedCost) and padded.name == m.name
    # 3 rows run the 4-token graph: one more token through the mlp (4 uses x 1 us); attention
    # and the LM head see the 3 real rows
    got = padded.decode_times(3, 1500, 4)
    assert got == pytest.approx(m.decode_times(3, 1500, 4) + 4 * US, rel=1e-12)
    assert padded.prefill_time(np.zeros(0), np.zeros(0), 3, 1500) == pytest.approx(
        m.prefill_time(np.zeros(0), np.zeros(0), 3, 1500) + 4 * US, rel=1e-12)
    # 4 rows and 8 rows are capture sizes: nothing added
    assert np.array_equal(padded.decode_times(4, 2000, 2), m.decode_times(4, 2000, 2))


def test_mixed_step_pads_under_piecewise_only():
    m = kernel_profile_from_dict(tiny())
    chunk = (np.array([90]), np.array([0]))
    base = m.prefill_time(*chunk, 4, 400)
    # 90 prompt + 4 decode = 94 tokens -> the 100-token graph: 6 more tokens, 4 x 6 us
    assert pad_cost(m, GraphPadding(SIZES)).prefill_time(*chunk, 4, 400) == pytest.approx(
        base + 24 * US, rel=1e-12)
    decode_only = pad_cost(m, GraphPadding(SIZES, True, False))
    assert decode_only.prefill_time(*chunk, 4, 400) == base
    big = (np.array([97]), np.array([0]))           # 101 tokens: eager, unpadded
    assert pad_cost(m, GraphPadding(SIZES)).prefill_time(*big, 4, 400) == \
        m.prefill_time(*big, 4, 400)


def test_roofline_padding_is_free_while_weights_bound_and_flops_past_the_ridge():
    gpu, model = get_gpu("A100-80GB"), get_model("llama-3-8b")
    roof = RooflineCostModel(gpu, model)
    assert roof.padded_extra(3, 4) == 0.0           # both stream the same weights
    fpt = 2.0 * model.n_layers * model.active_layer_params
    assert 240 * fpt / gpu.peak_flops > roof._weight_bytes / gpu.bandwidth   # past the ridge
    assert roof.padded_extra(240, 248) == pytest.approx(8 * fpt / gpu.peak_flops, rel=1e-12)
    assert pad_cost(roof, GraphPadding(SIZES)).cost is roof


def test_a_cost_model_without_padding_terms_is_left_alone():
    class Plain:
        def prefill_time(self, *a, **k):
            return 1.0
    plain = Plain()
    assert pad_cost(plain, GraphPadding(SIZES)) is plain
    assert pad_cost(kernel_profile_from_dict(tiny()), GraphPadding()).__class__.__name__ \
        == "KernelProfileCostModel"


@pytest.mark.parametrize("engine", ["fast", "baseline"])
def test_end_to_end_each_padded_decode_iteration_adds_its_tokens(engine):
    # three requests of 10 prompt tokens and 3 output tokens at t=0, max_num_seqs 4: vLLM's
    # sizes are (1, 2, 4, 8). One 30-token prefill (above 8: eager, unpadded), then two decode
    # iterations of 3 rows, each run as the 4-token graph: +4 us each
    rows = [(f"r{i}", 0.0, 10, 3) for i in range(3)]
    m = kernel_profile_from_dict(tiny())

    def run(**cfg):
        config = RunConfig(policy="fcfs", engine=engine,
                           policy_params={"max_num_seqs": 4, "max_batched_tokens": 64}, **cfg)
        return simulate(trace(rows), config, executor=CostModelExecutor(m))
    plain, padded = run(), run(cudagraph_padding=True)
    eager = run(cudagraph_padding=True, enforce_eager=True)
    for rid in ("r0", "r1", "r2"):
        assert rec(padded, rid)["first_token_s"] == rec(plain, rid)["first_token_s"]
        assert rec(padded, rid)["finish_s"] == pytest.approx(
            rec(plain, rid)["finish_s"] + 2 * 4 * US, rel=1e-12, abs=1e-15)
        assert rec(eager, rid)["finish_s"] == rec(plain, rid)["finish_s"]


def test_switch_and_dp_groups():
    params = {"max_num_seqs": 4, "max_batched_tokens": 64}
    ex = CostModelExecutor(kernel_profile_from_dict(tiny()))
    assert graph_padded(RunConfig(), params, ex) is ex                 # off by default
    on = graph_padded(RunConfig(cudagraph_padding=True), params, ex)
    assert isinstance(on.cost, GraphPaddedCost) and on.cost.padding.sizes == (1, 2, 4, 8)
    assert graph_padded(RunConfig(cudagraph_padding=True), {}, ex) is ex   # static policy
    recorded = {"cudagraph_capture_sizes": [1, 2, 32], "cudagraph_mode": [2, 1]}
    cfg = RunConfig(dp_lockstep=2, compilation_config=recorded)
    assert dp_padding(cfg, params).capture_sizes == (1, 2, 32)
    none = RunConfig(dp_lockstep=2, compilation_config={"cudagraph_mode": 0})
    assert dp_padding(none, params).capture_sizes == ()


def test_dp_rank_replaces_its_own_padding_with_the_groups():
    m = kernel_profile_from_dict(tiny())
    padded = pad_cost(m, GraphPadding(SIZES))
    alone = float(padded.decode_times(3, 1500, 1)[0])       # timed with its own 4-token graph
    # the group pads every rank to 8: the rank's dense part runs 8 tokens, not 4
    assert padded.padded_time(alone, 3, 3, 8, None) == pytest.approx(
        float(m.decode_times(3, 1500, 1)[0]) + 5 * 4 * US, rel=1e-12)
