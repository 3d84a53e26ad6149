"""DP lockstep at the group's own token counts (sim/lockstep.py with `Executor.dp_timing`):
vLLM 0.19's DP padding over the CUDA-graph capture sizes, the MoE layers over the gathered
tokens of every rank, the idle ranks' dummy passes. Hand-computed with a toy cost model whose
step costs C + D rows + B prompt tokens + P (padded tokens) + M (gathered tokens), all powers
of two (exact in binary), plus a conservation property and "zero weights, no change"."""

from __future__ import annotations

import numpy as np
import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coretoy import B, C, D, ToyCost, rec, trace
from seqsched.app.run import RunConfig, execute, prepare, simulate
from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.vllm_engine import cudagraph_capture_sizes
from seqsched.sim.lockstep import DPGroup, DPPadding

P, M = 1 / 64, 1 / 128
SIZES_32 = cudagraph_capture_sizes(32, 2048)        # max_num_seqs 32: graphs up to 64 tokens


class ToyDPCost(ToyCost):
    """The core toy plus P per padded token and M per gathered token (alone: its own tokens
    for both); a dummy pass costs C + P padded + M gathered + `extra`."""
    wants_dp_tokens = True

    def __init__(self, p=P, m=M, extra=0.0):
        self.p, self.m, self.extra = p, m, extra

    def prefill_time(self, new_tokens, past_tokens, decode_rows=0, decode_context=0):
        tokens = float(np.asarray(new_tokens).sum()) + decode_rows
        return (super().prefill_time(new_tokens, past_tokens, decode_rows, decode_context)
                + (self.p + self.m) * tokens)

    def decode_times(self, rows, context_sum, iterations):
        return super().decode_times(rows, context_sum, iterations) + (self.p + self.m) * rows

    def padded_time(self, alone_s, tokens, rows, padded_tokens, moe_tokens, moe_largest=None):
        return alone_s + self.p * (padded_tokens - tokens) + self.m * (moe_tokens - tokens)

    def dummy_time(self, padded_tokens, moe_tokens, moe_largest=None):
        return C + self.p * padded_tokens + self.m * moe_tokens + self.extra


def run(rows, cost, lockstep=2, **params):
    cfg = RunConfig(policy="fcfs", replicas=2, router="round-robin", dp_lockstep=lockstep,
                    policy_params={"max_num_seqs": 32, **params})
    return simulate(trace(rows), cfg, executor=CostModelExecutor(cost))


def times(result, rid):
    r = rec(result, rid)
    return r["first_token_s"], r["finish_s"]


def test_vllm_capture_sizes():
    assert SIZES_32 == (1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64)
    big = cudagraph_capture_sizes(128, 2048)            # the held-out MoE run's settings
    assert big[:4] == (1, 2, 4, 8) and big[-3:] == (240, 248, 256) and len(big) == 3 + 31 + 1
    assert cudagraph_capture_sizes(1024, 8192)[-2:] == (496, 512)     # capped at 512
    assert cudagraph_capture_sizes(1024, 300)[-1] == 288              # by the token budget
    assert cudagraph_capture_sizes(128, 2048, enforce_eager=True) == ()


def test_padding_rule():
    pad = DPPadding(SIZES_32)
    assert pad.padded([8, 37]) == [40, 40]          # every rank to the largest one's bucket
    assert pad.padded([1, 1]) == [1, 1]
    assert pad.padded([64, 3]) == [64, 64]
    assert pad.padded([8, 65]) == [8, 65]           # a rank past the graphs: nobody padded
    assert DPPadding().padded([8, 37]) == [8, 37]   # no graphs (enforce_eager)


def test_padded_step_costs_the_largest_ranks_bucket_and_the_gathered_tokens():
    rows = [("r0", 0, 8, 2), ("r1", 0, 37, 1)]     # r0 -> replica 0, r1 -> replica 1
    res = run(rows, ToyDPCost())
    # step 1: 8 and 37 tokens, both within the graphs: padded to bucket(37) = 40 each,
    # gathered 80. replica 0: 1 + 0.5 + 8 B + 40 P + 80 M = 3.75; replica 1: 1 + 0.5 + 37 B
    # + 40 P + 80 M = 7.375 -> the round ends at 7.375
    assert times(res, "r1") == (7.375, 7.375)
    # step 2: replica 0 decodes one token, replica 1 (idle) runs the one-token dummy: [1, 1],
    # gathered 2: 1 + 0.5 + P + 2 M = 1.53125 against the dummy's 1 + P + 2 M = 1.03125
    assert times(res, "r0") == (7.375, 7.375 + 1.53125)
    assert 1 + 0.5 + 8 * B + 40 * P + 80 * M == 3.75


def test_a_rank_past_the_graphs_runs_unpadded_and_the_others_gather_its_tokens():
    res = run([("r0", 0, 8, 2), ("r1", 0, 100, 1)], ToyDPCost())
    # 100 > 64: no padding; gathered 8 + 100 = 108. replica 1: 1 + 0.5 + 100 B + 100 P +
    # 108 M = 16.40625 (replica 0: 2.5 + 8 P + 108 M = 3.46875)
    assert times(res, "r1") == (16.40625, 16.40625)
    assert times(res, "r0") == (16.40625, 16.40625 + 1.53125)


def test_the_idle_ranks_dummy_pass_is_part_of_the_step():
    res = run([("r0", 0, 8, 2), ("r1", 0, 37, 1)], ToyDPCost(extra=2.0))
    # step 2: the dummy pass now takes 1.03125 + 2 = 3.03125 > replica 0's 1.53125
    assert times(res, "r0") == (7.375, 7.375 + 3.03125)


def test_no_graphs_no_padding():
    rows = [("r0", 0, 8, 2), ("r1", 0, 37, 1)]
    cost = ToyDPCost()
    cfg = RunConfig(policy="fcfs", replicas=2, router="round-robin", dp_lockstep=2,
                    policy_params={"max_num_seqs": 32})
    eager = prepare(trace(rows), cfg, executor=CostModelExecutor(cost))
    eager.engine.replicas[0].group.padding = DPPadding()     # as with --enforce-eager
    res = execute(eager)
    # step 1 unpadded: gathered 45; replica 1: 1 + 0.5 + 37 B + 37 P + 45 M
    assert times(res, "r1")[0] == pytest.approx(1.5 + 37 * B + 37 * P + 45 * M)


def test_an_end_moved_earlier_by_a_joiner_is_kept():
    """A later member can shorten the round (its tokens turn padding off): the round ends at
    the new, earlier end (the first closer is stale and stops)."""
    env = simpy.Environment()
    group = DPGroup(env, [0, 1], DPPadding((1, 2, 4, 8)), {0: lambda p, g, m: 0.5,
                                                            1: lambda p, g, m: 0.5})
    ends = {}

    def member(key, tokens, timing, delay):
        yield env.timeout(delay)
        yield from group.step(99.0, key, tokens, timing)
        ends[key] = env.now
    # member 0 alone: padded to 8 with the dummy, 10 s; with member 1's 9 tokens (past the
    # graphs) no padding: member 0 then takes 3 s, member 1 2 s
    env.process(member(0, 5, lambda p, g, m: 10.0 if p == 8 else 3.0, 0))
    env.process(member(1, 9, lambda p, g, m: 2.0, 0))
    env.run()
    assert ends == {0: 3.0, 1: 3.0}


def rounds(res, size=2):
    s = res.steps.assign(group=res.steps["replica"] // size)
    return s.groupby(["group", "start_s"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.0, 0.4, 2.0]), st.integers(1, 90),
                          st.integers(1, 20)), min_size=1, max_size=10))
def test_each_round_lasts_its_slowest_rank_at_the_groups_counts(rows):
    arrivals = np.cumsum([g for g, _, _ in rows])
    tr = [(f"q{i}", float(a), p, o) for i, (a, (_, p, o)) in enumerate(zip(arrivals, rows))]
    res = run(tr, ToyDPCost(), max_batched_tokens=64)
    r = res.records
    assert len(r) == len(tr) and (r["generated_tokens"] == r["output_tokens"]).all()
    assert int(res.steps["prefill_tokens"].sum()) == int(r["prompt_tokens"].sum())
    pad = DPPadding(cudagraph_capture_sizes(32, 64))
    for (_, start), g in rounds(res):
        assert g["end_s"].nunique() == 1
        by = {int(x.replica) % 2: x for x in g.itertuples()}
        tokens = [int(by[k].prefill_tokens + by[k].decode_tokens) if k in by else 1
                  for k in (0, 1)]
        padded = pad.padded(tokens)
        gathered = sum(padded)
        # a member: its toy cost at the group's counts; an idle rank: the dummy pass
        want = max((C + D * by[k].rows + B * by[k].prefill_tokens if k in by else C)
                   + P * padded[k] + M * gathered for k in (0, 1))
        assert g["end_s"].iloc[0] - start == pytest.approx(want)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.3, 1.5]), st.integers(1, 90),
                          st.integers(1, 20)), min_size=1, max_size=8))
def test_zero_weights_give_the_plain_lockstep(rows):
    """With P = M = 0 the group's counts change nothing: the same records and steps as the
    lockstep of step durations (the toy without `dp_timing`)."""
    arrivals = np.cumsum([g for g, _, _ in rows])
    tr = [(f"q{i}", float(a), p, o) for i, (a, (_, p, o)) in enumerate(zip(arrivals, rows))]
    a, b = run(tr, ToyDPCost(0.0, 0.0)), run(tr, ToyCost())
    assert a.records.equals(b.records) and a.steps.equals(b.steps)
