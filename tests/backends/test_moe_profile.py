"""The MoE expert table of a kernel profile (backends/moe_profile.py): hand-computed lookups,
the routing expectation, expert parallelism, the importer's tp1 fallback, and the built-in
Qwen3 profiles' shapes."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from seqsched.backends.import_llmservingsim import import_llmservingsim
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.moe_profile import moe_from_dict
from seqsched.backends.profile_registry import load_cost_profile, match_builtin
from seqsched.backends.specs import get_gpu, get_model, kv_bytes_per_gpu
from seqsched.common.errors import UserError

from test_llmservingsim_import import write_bundle

# experts 2: 10 us + 1 us/token (tokens 1..100); experts 4: 20 us + 2 us/token (tokens 2..100)
SECTION = {"count": 3, "n_experts": 4, "top_k": 2,
           "rows": [{"experts": 4, "tokens": [2, 100], "us": [24, 220]},
                    {"experts": 2, "tokens": [1, 100], "us": [11, 110]}]}


def test_uniform_routing_expects_the_balls_in_bins_count():
    t = moe_from_dict(SECTION)
    # E (1 - (1 - k/E)^T) with E = 4, k = 2: T=1 -> 2, T=2 -> 3, T=3 -> 3.5
    assert t.activated([1, 2, 3]) == pytest.approx([2.0, 3.0, 3.5])
    pig = moe_from_dict({**SECTION, "routing": "pigeonhole"})
    assert pig.activated([1, 2, 3]) == pytest.approx([2.0, 4.0, 4.0])     # min(T k, E)


def test_lookup_is_linear_in_tokens_then_between_expert_rows():
    t = moe_from_dict(SECTION)
    assert t.us(10, 2) == pytest.approx(20.0)
    assert t.us(10, 4) == pytest.approx(40.0)
    assert t.us(10, 3) == pytest.approx(30.0)                  # halfway between the rows
    assert t.us(1, 4) == pytest.approx(24.0)                   # clamped below the row's grid
    # one iteration of T = 2 tokens: 3 experts expected; per layer row 2 at 2 tokens = 12,
    # row 4 = 24, halfway = 18 us; 3 layers
    assert t.seconds(2) == pytest.approx(3 * 18e-6)
    # T = 10: 4 (1 - 0.5^10) = 3.996 experts: 20 + (3.996 - 2) / 2 x (40 - 20) us per layer
    e10 = 4 * (1 - 0.5 ** 10)
    # vectorised: k iterations in one call, zero tokens cost nothing
    assert t.seconds(np.array([0.0, 2.0, 10.0])) == pytest.approx(
        [0.0, 54e-6, 3 * (20 + (e10 - 2) / 2 * 20) * 1e-6])


def test_expert_parallel_rank_sees_its_share_of_the_gathered_tokens():
    t = moe_from_dict({**SECTION, "ep": 2, "gather": 2})
    tokens, experts = t.shape(10.0)
    # the group gathers 2 x 10 tokens; a rank runs 20 x 2 / 2 = 20 pairs = 10 table tokens,
    # over its 2 experts: 2 (1 - 0.5^20)
    assert tokens == pytest.approx(10.0)
    assert experts == pytest.approx(2 * (1 - 0.5 ** 20))


def test_kernel_profile_adds_the_expert_time_per_iteration(tmp_path):
    b = write_bundle(tmp_path / "b")
    (b / "tp1" / "moe.csv").write_text(
        "tokens,activated_experts,time_us\n1,2,11\n100,2,110\n2,4,24\n100,4,220\n")
    model = get_model("tiny")
    moe_model = dataclasses.replace(model, name="tiny-moe", n_experts=4, experts_per_token=2)
    dense = kernel_profile_from_dict(json.loads(json.dumps(
        import_llmservingsim(b, model, 1))))
    prof = import_llmservingsim(b, moe_model, 1)
    assert prof["moe"]["count"] == 2 and prof["moe"]["n_experts"] == 4
    assert prof["calibration"]["moe"]["n"] == 0             # two points per row: nothing left out
    moe = kernel_profile_from_dict(json.loads(json.dumps(prof)))
    # 8 decode rows: 8 tokens, E (1 - 0.5^8) = 3.984 experts, two layers
    e = 4 * (1 - 0.5 ** 8)
    lo, hi = 10 + 8, 20 + 2 * 8
    want = 2 * (lo + (e - 2) / 2 * (hi - lo)) * 1e-6
    got = moe.decode_times(8, 8 * 64, 3) - dense.decode_times(8, 8 * 64, 3)
    assert got == pytest.approx([want] * 3)


def test_tp2_without_a_table_reads_tp1_and_a_moe_model_needs_one(tmp_path):
    b = write_bundle(tmp_path / "b")
    (b / "tp2").mkdir()
    for f in ("dense.csv", "per_sequence.csv", "attention.csv"):
        (b / "tp2" / f).write_text((b / "tp1" / f).read_text())
    model = get_model("qwen3-30b-a3b")
    with pytest.raises(UserError, match="no moe.csv"):
        import_llmservingsim(b, model, 1)
    (b / "tp1" / "moe.csv").write_text("tokens,activated_experts,time_us\n1,8,50\n16,128,800\n")
    prof = import_llmservingsim(b, model, 2, get_gpu("RTX-PRO-6000"))
    assert prof["moe"]["table"] == "tp1/moe.csv"
    assert any("tp1/moe.csv" in n for n in prof["provenance"]["notes"])


def test_builtin_qwen3_profiles_match_their_runs():
    assert match_builtin("RTX-PRO-6000", "qwen3-32b", 2) == "rtxpro6000-qwen3-32b-tp2"
    assert match_builtin("RTXPRO6000", "Qwen/Qwen3-30B-A3B-Instruct-2507", 1) == \
        "rtxpro6000-qwen3-30b-a3b-tp1"
    cost = load_cost_profile("rtxpro6000-qwen3-30b-a3b-tp1")
    assert cost.moe is not None and (cost.moe.n_experts, cost.moe.top_k) == (128, 8)
    assert cost.moe.count == 48
    assert load_cost_profile("rtxpro6000-qwen3-32b-tp2").moe is None
    # a decode step of 64 rows costs more with the expert FFN than without it
    t = cost.decode_times(64, 64 * 512, 1)[0]
    cost.moe = None
    assert t > cost.decode_times(64, 64 * 512, 1)[0]


def test_qwen3_kv_sizing_uses_gqa_heads_head_dim_and_tp():
    m32, moe = get_model("qwen3-32b"), get_model("qwen3-30b-a3b")
    assert kv_bytes_per_gpu(m32, 1) == 2 * 64 * 8 * 128 * 2            # 256 KiB / token
    assert kv_bytes_per_gpu(m32, 2) == 2 * 64 * 4 * 128 * 2
    assert kv_bytes_per_gpu(moe, 1) == 2 * 48 * 4 * 128 * 2            # 96 KiB / token
    assert kv_bytes_per_gpu(moe, 8) == 2 * 48 * 1 * 128 * 2            # 4 heads: replicated
    assert math.isclose(moe.n_params / 1e9, 30.5, abs_tol=0.1)         # "30.5B" (model card)


def test_a_lockstep_group_gathers_its_own_counts_not_the_balanced_guess():
    """EP with DP (sim/lockstep.py): the MoE layer of every rank sees the group's gathered
    tokens; without them, `gather` balanced ranks of this rank's tokens."""
    t = moe_from_dict({**SECTION, "ep": 2, "gather": 2})
    # balanced guess: 2 x 8 = 16 gathered -> 8 table tokens, 2 (1 - 0.5^16) experts: row 2
    # at 8 tokens = 18 us, 3 layers
    assert t.seconds(8.0) == pytest.approx(3 * 18e-6, rel=1e-4)
    # the group's counts: 8 + 32 = 40 gathered -> 20 table tokens -> 30 us a layer
    assert t.seconds(8.0, gathered=40.0) == pytest.approx(3 * 30e-6, rel=1e-9)
    assert t.seconds(np.array([8.0, 8.0]), gathered=40.0) == pytest.approx([90e-6] * 2)
    # no gather (no EP over DP): the rank's own tokens, whatever the group gathered
    solo = moe_from_dict(SECTION)
    assert solo.seconds(8.0, gathered=40.0) == solo.seconds(8.0)


def test_kernel_profile_times_a_dp_rank_at_its_padded_and_gathered_tokens():
    from seqsched.backends.kernel_profile import Grid2, KernelProfileCostModel, Op
    zero = Grid2(np.array([0.0, 1e4]), np.array([0.0, 1e5]), np.zeros((2, 2)))
    cost = KernelProfileCostModel(
        dense=[Op("mlp", 1.0, np.array([0.0, 1000.0]), np.array([0.0, 1000.0]))],  # 1 us/token
        per_sequence=[Op("lm_head", 1.0, np.array([0.0, 100.0]), np.array([0.0, 100.0]))],
        attention_count=1.0, prefill_grid=zero, decode_grid=zero,
        moe=moe_from_dict({**SECTION, "ep": 2, "gather": 2}))
    alone = cost.prefill_time(np.zeros(0), np.zeros(0), 8, 8 * 50)
    assert alone == pytest.approx((8 + 8 + 3 * 18) * 1e-6, rel=1e-4)   # dense, LM head, MoE
    # padded to 16 tokens (dense 16 us), LM head on the 8 real rows, MoE over 40 gathered;
    # attention (zero here) and the per-row ops stay as timed alone
    assert cost.padded_time(alone, 8, 8, 16, 40) == pytest.approx((16 + 8 + 90) * 1e-6)
    assert cost.padded_time(alone + 1.0, 8, 8, 16, 40) == pytest.approx(1.0 + 114e-6)
    # the dummy pass: padded dense and the MoE over the group's tokens, no rows
    assert cost.dummy_time(16, 40) == pytest.approx((16 + 90) * 1e-6)
    assert cost.wants_dp_tokens
    cost.moe = None                     # a swapped table is not served from the memo
    assert cost.padded_time(alone, 8, 8, 16, 40) == pytest.approx(alone + 8e-6)
