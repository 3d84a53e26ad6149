"""The continuous policy's decisions on hand-built replica views (no engine): the per-row
token budget, KV reservation, preemption victims and admission order."""

from __future__ import annotations

from sortedcontainers import SortedKeyList

from seqsched.policies.continuous import ContinuousPolicy, SJFPolicy
from seqsched.sim.kv import KVCache
from seqsched.sim.replica import ReplicaView
from seqsched.sim.sequence import Seq, Status


def seq(i, prompt, out, *, arrival=0.0, predicted=None, prefilled=0, generated=0, blocks=0,
        running=True):
    s = Seq(i, f"s{i}", arrival, prompt, out, predicted if predicted is not None else out,
            target_tokens=out, prefilled=prefilled, generated=generated, kv_blocks=blocks)
    s.status = Status.RUNNING if running else Status.WAITING
    return s


def view(policy, running, waiting=(), blocks=8, block_size=4):
    kv = KVCache(blocks * block_size, block_size)
    kv.used_blocks = sum(s.kv_blocks for s in running)
    queue = SortedKeyList(waiting, key=policy.priority)
    return ReplicaView(0.0, 0, queue, tuple(running), kv, False)


def test_prefill_chunk_reserves_only_the_tokens_it_gets():
    # regression: a row mid-prefill reserved KV for min(its rest, the whole budget) although
    # decode rows had taken part of the budget; with little KV free that preempted it for
    # nothing. Budget 8: the decode row takes 1, the chunk gets 7 -> 4 + 7 + 1 = 12 tokens =
    # 3 blocks (2 more); 2 blocks free -> it fits, nobody is preempted.
    pol = ContinuousPolicy(max_batched_tokens=8, chunked_prefill=True)
    d = seq(0, 4, 10, prefilled=4, generated=1, blocks=2)
    p = seq(1, 40, 5, prefilled=4, blocks=1)
    step = pol.schedule(view(pol, [d, p], blocks=5))
    assert step.preempt == []
    assert step.seqs == [d, p] and step.prefill_tokens == [0, 7]
    assert step.max_iterations == 1                # the prompt is not complete


def test_fcfs_preempts_the_latest_arrival_first():
    pol = ContinuousPolicy()
    # three decode rows, each holding 2 full blocks (8 tokens) and needing a third; 1 free
    a = seq(0, 4, 20, arrival=0.0, prefilled=4, generated=4, blocks=2)
    b = seq(1, 4, 20, arrival=2.0, prefilled=4, generated=4, blocks=2)
    c = seq(2, 4, 20, arrival=1.0, prefilled=4, generated=4, blocks=2)
    step = pol.schedule(view(pol, [a, b, c], blocks=7))
    # 3 needed, 1 free: b (latest) goes -> 2 needed, 3 free
    assert step.preempt == [b]
    assert set(step.seqs) == {a, c}


def test_sjf_preempts_the_longest_prediction_first_and_admits_shortest_first():
    pol = SJFPolicy()
    a = seq(0, 4, 20, predicted=50, prefilled=4, generated=4, blocks=2)
    b = seq(1, 4, 20, predicted=5, prefilled=4, generated=4, blocks=2)
    c = seq(2, 4, 20, predicted=500, prefilled=4, generated=4, blocks=2)
    step = pol.schedule(view(pol, [a, b, c], blocks=7))
    assert step.preempt == [c]
    # no preemption needed: admission in predicted order, arrival breaking ties
    w = [seq(3 + i, 4, 9, arrival=float(i), predicted=p, running=False)
         for i, p in enumerate([30, 10, 20, 10])]
    step = pol.schedule(view(pol, [], waiting=w, blocks=64))
    assert [s.id for s in step.seqs] == ["s4", "s6", "s5", "s3"]
    assert step.preempt == []


def test_admission_is_head_of_line_and_bounded_by_kv():
    pol = ContinuousPolicy()
    # 4 free blocks of 4: s0 needs blocks(8 + 1) = 3, s1 needs 3 -> stop, s2 (1 block) waits
    # behind it (no skipping in fcfs)
    w = [seq(0, 8, 5, arrival=0.0, running=False), seq(1, 8, 5, arrival=1.0, running=False),
         seq(2, 1, 5, arrival=2.0, running=False)]
    step = pol.schedule(view(pol, [], waiting=w, blocks=4))
    assert [s.id for s in step.seqs] == ["s0"]


def test_no_admission_in_a_step_that_preempts():
    pol = ContinuousPolicy()
    a = seq(0, 4, 20, prefilled=4, generated=4, blocks=2)
    b = seq(1, 4, 20, arrival=1.0, prefilled=4, generated=4, blocks=2)
    w = [seq(2, 1, 2, arrival=2.0, running=False)]
    step = pol.schedule(view(pol, [a, b], waiting=w, blocks=4))
    assert step.preempt == [b] and step.seqs == [a]
