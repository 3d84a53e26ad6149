"""Prefix caching (vLLM v1 style): hand-computed hits with the toy cost model of coretoy.py
(a prefill iteration of r rows = 1 + 0.5 r + 0.125 x prompt tokens processed), LRU eviction
order of the block pool, and conservation / KV-capacity properties with caching on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from coretoy import rec, small_kv_config, toy_executor, trace
from seqsched.app.run import RunConfig, execute, prepare, simulate
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.specs import get_gpu, get_model
from seqsched.sim.prefix_cache import PrefixCache
from seqsched.sim.sequence import Seq
from seqsched.traces.prefix import prefix_source
from test_conservation import check_conservation

A = list(range(1, 17))                      # 16 prompt tokens
B = list(range(1, 13)) + list(range(100, 108))   # shares A's first 12 tokens (3 blocks of 4)


def _two(caching=True, executor=None, gap=10.0, **kw):
    t = trace([("a", 0, 16, 2), ("b", gap, 20, 2)], input_tok_ids=[A, B])
    cfg = small_kv_config(64, policy="fcfs", block_size=4, prefix_caching=caching, **kw)
    return simulate(t, cfg, executor=executor if executor is not None else toy_executor())


def test_second_request_skips_the_shared_prefix():
    on, off = _two(True), _two(False)
    # a: prefill 1 + 0.5 + 0.125*16 = 3.5, one decode 1.5 -> 5.0; its 4 prompt blocks cached
    # b at 10: blocks 0-2 hit (12 tokens), block 3 differs: prefill 8 tokens
    #   1 + 0.5 + 0.125*8 = 2.5 (uncached: 1 + 0.5 + 0.125*20 = 4.0)
    assert rec(on, "b")["first_token_s"] - 10 == 2.5
    assert rec(off, "b")["first_token_s"] - 10 == 4.0
    # shorter by exactly the cached tokens' prefill time: 0.125 * 12
    assert (rec(off, "b")["first_token_s"] - rec(on, "b")["first_token_s"]) == 0.125 * 12
    assert (rec(on, "a")["cached_tokens"], rec(on, "b")["cached_tokens"]) == (0, 12)
    assert list(on.steps["prefill_tokens"]) == [16, 8]
    s = on.summary
    assert s["prefix_cached_tokens"] == 12 and s["prefix_hit_rate_requests"] == 0.5
    assert s["prefix_hit_rate_tokens"] == 12 / 36
    assert "cached_tokens" not in off.records and "prefix_cached_tokens" not in off.summary


def test_cached_prefill_costs_only_the_uncached_part_in_the_roofline_model():
    gpu, model = get_gpu("A100-80GB"), get_model("tiny")
    cost = RooflineCostModel(gpu, model)
    res = _two(True, executor=_roofline(cost))
    ttft = rec(res, "b")["first_token_s"] - 10
    assert ttft == pytest.approx(cost.prefill_time(np.array([8]), np.array([12])), rel=1e-12)


def _roofline(cost):
    from seqsched.backends.executor import CostModelExecutor
    return CostModelExecutor(cost)


def test_concurrent_requests_do_not_hit_blocks_not_yet_computed():
    # b arrives while a is still prefilling its blocks in the same step: no hit
    res = _two(True, gap=0.0)
    assert rec(res, "b")["cached_tokens"] == 0


def test_whole_prompt_cached_recomputes_the_last_block():
    # the same 16 tokens twice: at most 15 may hit -> 3 blocks (12 tokens), 4 recomputed
    t = trace([("a", 0, 16, 2), ("b", 10, 16, 2)], input_tok_ids=[A, A])
    cfg = small_kv_config(64, policy="fcfs", block_size=4, prefix_caching=True)
    res = simulate(t, cfg, executor=toy_executor())
    assert rec(res, "b")["cached_tokens"] == 12
    assert rec(res, "b")["first_token_s"] - 10 == 1 + 0.5 + 0.125 * 4


def _seq(idx, prompt):
    return Seq(idx, f"s{idx}", 0.0, prompt, 1, 1, target_tokens=1)


def test_lru_eviction_order():
    table = {0: [10, 11, 12], 1: [20, 21], 2: [10, 11, 12]}
    pc = PrefixCache(8, 4, hashes=lambda s: table[s.idx])
    s0, s1 = _seq(0, 13), _seq(1, 9)
    for s, n in ((s0, 3), (s1, 2)):
        pc.take(n)
        s.kv_blocks, s.cache_keys = n, []
        pc.register(s, 4 * n)
        assert pc.release(s) == n
        s.kv_blocks = 0
    # free queue, head first: 3 never-used blocks, s0's blocks last-first, then s1's
    assert list(pc.free_queue.items())[1:] == [(12, 1), (11, 1), (10, 1), (21, 1), (20, 1)]
    probe = _seq(2, 13)
    assert pc.lookup(probe) == (12, 0)
    pc.take(4)                                  # 3 never-used, then s0's tail block
    assert pc.evicted == 1 and 12 not in pc.refs
    assert pc.lookup(probe) == (8, 0)
    tokens, taken = pc.acquire(probe)           # a hit takes 10, 11 off the free queue
    assert (tokens, taken) == (8, 2) and pc.refs[10] == 1
    pc.take(1)                                  # so s1's tail block goes next, not them
    assert 21 not in pc.refs and 10 in pc.refs and 11 in pc.refs
    assert pc.lookup(_seq(1, 9)) == (4, 0)      # 20 still cached (the hit stops at 8)


def test_trace_without_prefix_information_runs_uncached(caplog):
    t = trace([("a", 0, 16, 2), ("b", 10, 16, 2)])
    cfg = small_kv_config(64, policy="fcfs", block_size=4, prefix_caching=True)
    with caplog.at_level("WARNING"):
        res = simulate(t, cfg, executor=toy_executor())
    assert "no prefix information" in caplog.text
    assert "cached_tokens" not in res.records
    assert rec(res, "b")["first_token_s"] - 10 == 3.5


def test_prefix_sources():
    t = trace([("a", 0, 1100, 2), ("b", 1, 1100, 2)], hash_ids=[[7, 8, 9], [7, 5, 9]])
    src = prefix_source(t)
    ha, hb = src.block_hashes(0, 1100, 16), src.block_hashes(1, 1100, 16)
    assert len(ha) == 1100 // 16
    assert ha[:32] == hb[:32] and ha[32] != hb[32]          # one 512-token Mooncake block
    assert ha[64] != hb[64]                                  # chained: differs after
    t = trace([("a", 0, 40, 8), ("b", 1, 48, 8), ("c", 2, 40, 8)],
              session_id=["x", "x", "y"], prefix_group=[0, 0, 0], prefix_tokens=[16] * 3)
    src = prefix_source(t)
    ha, hb, hc = (src.block_hashes(i, 48, 8) for i in range(3))
    assert ha == hb                     # same conversation: its next turn re-uses it all
    assert hc[:2] == ha[:2] and hc[2] != ha[2]   # other user: only the system prompt
    assert prefix_source(trace([("a", 0, 4, 1)])) is None


@st.composite
def prefix_runs(draw):
    n = draw(st.integers(1, 14))
    arrivals = sorted(draw(st.integers(0, 30)) / 4 for _ in range(n))
    rows = [(f"r{i}", arrivals[i], draw(st.integers(1, 64)), draw(st.integers(1, 40)))
            for i in range(n)]
    groups = [draw(st.integers(0, 2)) for _ in range(n)]
    t = trace(rows, prefix_group=groups, prefix_tokens=[draw(st.sampled_from([0, 8, 24]))] * n,
              session_id=[draw(st.integers(0, 3)) for _ in range(n)])
    chunked = draw(st.booleans())
    params = {"max_num_seqs": draw(st.integers(1, 4)), "chunked_prefill": chunked,
              "max_batched_tokens": draw(st.integers(8, 64)) if chunked else 256,
              "preemption": draw(st.sampled_from(["recompute", "restart", "swap"]))}
    policy = draw(st.sampled_from(["fcfs", "sjf", "srpt"]))
    if policy != "fcfs":                # displacement frees blocks too (policies/guards.py)
        params["preemptive"] = draw(st.booleans())
    cfg = small_kv_config(draw(st.integers(112, 300)), policy=policy, policy_params=params, block_size=draw(st.sampled_from([4, 16])),
        replicas=draw(st.integers(1, 2)), prefix_caching=True, max_new_tokens=None,
        router=draw(st.sampled_from(["round-robin", "least-loaded"])))
    return t, cfg


@settings(max_examples=40, deadline=None)
@given(prefix_runs())
def test_conservation_and_kv_capacity_with_prefix_caching(case):
    t, cfg = case
    run = prepare(t, cfg, executor=toy_executor())
    res = execute(run)
    check_conservation(t, cfg, res)
    cached = res.records["cached_tokens"]
    assert (cached >= 0).all() and (cached % cfg.block_size == 0).all()
    # a hit never covers a whole prefill: at most prompt + kept output - 1 per attempt
    assert (cached <= (res.records["prompt_tokens"] + res.records["recomputed_tokens"]
                       - 1) * res.records["attempts"]).all()
    for r in run.engine.replicas:           # every block back in the free queue
        assert r.kv.used_blocks == 0
        assert sum(r.kv.prefix.free_queue.values()) == r.kv.num_blocks
        assert all(v == 0 for v in r.kv.prefix.refs.values())


def test_a_victim_sharing_its_prefix_frees_only_its_own_blocks():
    """Regression (hypothesis found it): a preemption victim whose first block another running
    request shares frees one block less than it holds; the policy counted all of them, so the
    replica was handed a step whose KV did not fit ("scheduled more KV than is free")."""
    rows = [("r0", 0, 1, 1), ("r1", 0, 1, 1), ("r2", 0, 22, 33), ("r3", 0, 1, 1),
            ("r4", 0, 44, 25), ("r5", 0, 1, 1), ("r6", 0, 53, 12), ("r7", 0, 1, 1),
            ("r8", 0, 63, 2), ("r9", 0, 1, 1), ("r10", 0, 17, 2)]
    t = trace(rows, prefix_group=[0] * 11, prefix_tokens=[0] * 11,
              session_id=[0] * 6 + [1] + [0] * 4)
    cfg = small_kv_config(9 * 16, policy="fcfs", policy_params={
        "max_num_seqs": 3, "chunked_prefill": True, "max_batched_tokens": 17,
        "preemption": "recompute"}, block_size=16, replicas=2, prefix_caching=True,
        max_new_tokens=None, router="round-robin")
    run = prepare(t, cfg, executor=toy_executor())
    check_conservation(t, cfg, execute(run))
    assert all(r.kv.used_blocks == 0 for r in run.engine.replicas)


def test_freed_by_counts_shared_blocks_once_for_all_victims():
    from seqsched.sim.kv import KVCache
    from seqsched.sim.prefix_cache import PrefixCache
    from seqsched.sim.sequence import Seq
    kv = KVCache(40, 4, prefix=PrefixCache(10, 4, lambda s: [11, 12, 13]))
    a, b = (Seq(idx=i, id=x, arrival_s=0.0, prompt_tokens=12, output_tokens=2, predicted=2)
            for i, x in enumerate("ab"))
    for s, private in ((a, 1), (b, 2)):      # both hold blocks 11 and 12, plus private ones
        s.cache_keys, s.kv_blocks = [11, 12], 2 + private
    kv.prefix.refs.update({11: 2, 12: 2})
    assert kv.freed_by(a) == 1 and kv.freed_by(b) == 2     # alone: only the private blocks
    dropped: dict = {}
    assert kv.freed_by(a, dropped) == 1
    assert kv.freed_by(b, dropped) == 2 + 2                # both gone: the shared pair frees
    assert KVCache(40, 4).freed_by(a) == 3                 # no caching: all it holds


def test_prefix_caching_from_the_cli(tmp_path, capsys):
    from seqsched.app.cli import main
    out = tmp_path / "pc"
    code = main(["compare", "synth:shared-prefix", "-n", "48", "--model", "llama-3-8b",
                 "--gpu", "H100-SXM", "--policies", "fcfs", "--enable-prefix-caching",
                 "--no-progress", "--out", str(out)])
    assert code == 0
    r = pd.read_csv(out / "records_fcfs.csv")
    assert r["cached_tokens"].sum() > 0
    assert RunConfig(prefix_caching=True).features() == ("prefix",)
