"""The operator-profile cost model on hand-computed tiny profiles: exact iteration times,
interpolation/extrapolation, malformed profiles, and the engine running on it."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.kernel_profile import FORMAT, kernel_profile_from_dict
from seqsched.common.errors import UserError


def tiny(kind: str = "grid4", allreduce: bool = False) -> dict:
    """2 layers. dense: 10 + 1 us/token per use, 2 uses per layer -> count 4; embedding once
    at 3 us flat. per-sequence: lm_head 5 + 5 us/row. Attention per layer (count 2)."""
    p = {"format": FORMAT, "version": 1, "name": "tiny", "gpu": "G", "model": "tiny", "tp": 1,
         "dtype": "bf16",
         "dense": {"mlp": {"count": 4, "tokens": [1, 101], "us": [11, 111]},
                   "embedding": {"count": 1, "tokens": [1, 1000], "us": [3, 3]}},
         "per_sequence": {"lm_head": {"count": 1, "sequences": [1, 11], "us": [10, 60]}}}
    if kind == "grid4":
        # pure decode (pc 0): 1 row: 2 + 0.01 us/ctx; 4 rows: 4 + 0.04 us/ctx.
        # pure prefill (nd 0): chunk 100: 20 us at kp 0, 40 us at kp 1000; chunk 200: 60/100
        # mixed (pc 100, nd 4): 30 + 0.05 us/ctx at kp 0
        p["attention"] = {"kind": "grid4", "count": 2, "slices": [
            {"pc": 0, "nd": 1, "rows": [{"kp": 0, "kd": [0, 1000], "us": [2, 12]}]},
            {"pc": 0, "nd": 4, "rows": [{"kp": 0, "kd": [0, 1000], "us": [4, 44]}]},
            {"pc": 100, "nd": 0, "rows": [{"kp": 0, "kd": [0], "us": [20]},
                                          {"kp": 1000, "kd": [0], "us": [40]}]},
            {"pc": 200, "nd": 0, "rows": [{"kp": 0, "kd": [0], "us": [60]},
                                          {"kp": 1000, "kd": [0], "us": [100]}]},
            {"pc": 100, "nd": 4, "rows": [{"kp": 0, "kd": [0, 1000], "us": [30, 80]}]}]}
    else:
        p["attention"] = {"kind": "split", "count": 2,
                          "prefill": {"tokens": [1, 101], "cached": [0, 1000],
                                      "us": [[1, 11], [21, 31]]},
                          "decode": {"rows": [1, 5], "context": [0, 1000],
                                     "us": [[2, 12], [4, 44]]}}
    if allreduce:
        p["allreduce"] = {"count": 4, "bytes_per_token": 10, "bytes": [0, 1000],
                          "us": [5, 15]}
    return p


def us(x):
    return x * 1e-6


def test_decode_times_are_the_hand_sum():
    m = kernel_profile_from_dict(tiny())
    # 4 rows, contexts summing to 2000 (mean 500), then 2004 (mean 501), ...; the grid's
    # kv_decode is the history before the new token: 499, 500, ...
    t = m.decode_times(4, 2000, 3)
    for i, got in enumerate(t):
        mean = 499 + i
        dense = 4 * (11 + 3) + 3                      # 4 tokens through mlp, embedding 3
        head = 10 + 5 * 3                             # 4 sequences
        attn = 2 * (4 + 0.04 * mean)
        assert got == pytest.approx(us(dense + head + attn), rel=1e-12)
    assert np.all(np.diff(t) > 0)


def test_prefill_chunks_are_summed_then_looked_up():
    m = kernel_profile_from_dict(tiny())
    # two chunks of 50 = one chunk of 100; cached 300 + 200 = 500 -> halfway 20..40 = 30
    got = m.prefill_time(np.array([50, 50]), np.array([300, 200]))
    dense = 4 * (10 + 100) + 3
    head = 10 + 5 * 1                                  # 2 sequences
    assert got == pytest.approx(us(dense + head + 2 * 30.0), rel=1e-12)


def test_mixed_batch_blends_prefill_and_decode_axes():
    m = kernel_profile_from_dict(tiny())
    # chunk 100 at kp 0 with 4 decode rows of mean context 600 (history 599):
    # slice (100, 4) -> 30 + 0.05*599
    got = m.prefill_time(np.array([100]), np.array([0]), decode_rows=4, decode_context=2400)
    dense = 4 * (10 + 104) + 3
    head = 10 + 5 * 4                                  # 5 sequences
    assert got == pytest.approx(us(dense + head + 2 * 59.95), rel=1e-12)
    # chunk 150 (between the 100 and 200 slices) with no decodes: 0.5*(20 + 60) at kp 0
    got = m.prefill_time(np.array([150]), np.array([0]))
    assert got == pytest.approx(us(4 * 160 + 3 + 10 + 2 * 40.0), rel=1e-12)


def test_split_kind_sums_chunks_separately():
    m = kernel_profile_from_dict(tiny("split"))
    # chunks (51, cached 0) -> 11 and (101, cached 500) -> 26; decode: 3 rows of context
    # 250, bilinear between rows 1 and 5
    got = m.prefill_time(np.array([51, 101]), np.array([0, 500]), 3, 750)
    dense = 4 * (10 + 155) + 3
    head = 10 + 5 * 4
    dec = (2 + 0.01 * 250) * 0.5 + (4 + 0.04 * 250) * 0.5
    assert got == pytest.approx(us(dense + head + 2 * (11 + 26 + dec)), rel=1e-12)


def test_allreduce_by_bytes():
    m = kernel_profile_from_dict(tiny(allreduce=True))
    base = kernel_profile_from_dict(tiny())
    # 10 tokens x 10 bytes = 100 bytes -> 6 us, 4 all-reduces
    diff = m.decode_times(10, 5000, 1)[0] - base.decode_times(10, 5000, 1)[0]
    assert diff == pytest.approx(us(4 * 6.0), rel=1e-9)


def test_extrapolation_warns_once_and_says_how_far(caplog):
    m = kernel_profile_from_dict(tiny())
    with caplog.at_level(logging.WARNING, logger="seqsched.backends"):
        a = m.decode_times(4, 4 * 2000, 2)
        m.decode_times(4, 4 * 3000, 2)
    lines = [r.getMessage() for r in caplog.records if "kv_decode" in r.getMessage()]
    assert len(lines) == 1 and "2.0x" in lines[0] and "max 1000" in lines[0]
    # linear beyond the grid: slope of the last two samples
    assert a[0] == pytest.approx(us(4 * 14 + 3 + 25 + 2 * (4 + 0.04 * 1999)), rel=1e-12)


def test_executor_times_a_step_with_the_profile():
    from seqsched.sim.sequence import Seq
    from seqsched.sim.step import Step
    m = kernel_profile_from_dict(tiny())
    seqs = [Seq(i, f"r{i}", 0.0, 100, 10, 10, target_tokens=10) for i in range(4)]
    for s in seqs:
        s.prefilled = 100
        s.generated = 1
    step = Step(seqs=seqs, prefill_tokens=[0] * 4)
    times = CostModelExecutor(m).run(step, 3, None)
    ctx = sum(s.context_tokens for s in seqs)
    assert times.duration_s == pytest.approx(
        m.prefill_time(np.zeros(0), np.zeros(0), 4, ctx)
        + m.decode_times(4, ctx + 4, 2).sum(), rel=1e-12)


@pytest.mark.parametrize("edit, needle", [
    (lambda p: p.update(format="other"), "'format'"),
    (lambda p: p["dense"]["mlp"].update(us=[1]), "match 'us'"),
    (lambda p: p["attention"].update(kind="cube"), "attention kind"),
    (lambda p: p["attention"]["slices"][0].pop("rows"), "rows of kp"),
    (lambda p: p.pop("per_sequence"), "no 'per_sequence'"),
])
def test_malformed_profiles_are_one_line_errors(edit, needle):
    p = tiny()
    edit(p)
    with pytest.raises(UserError, match=needle):
        kernel_profile_from_dict(p)
