"""`vllm-dp` (sim/dp_router.py): vLLM's DP load balancer, waiting x 4 + running over counts
refreshed once per 100-ms period, plus its own increments in between. Hand cases on two
replicas with the toy cost model of coretoy.py (a prefill iteration of r rows = 1 + 0.5 r +
0.125 x prompt tokens, a decode iteration 1 + 0.5 r)."""

from __future__ import annotations

from coretoy import run_toy
from seqsched.sim.dp_router import choose_engine, dp_score


def test_score_weighs_waiting_four_times_and_ties_go_to_the_lowest_rank():
    assert dp_score(1, 1) == 5 and dp_score(0, 4) == 4
    counts = [[1, 1], [0, 4]]            # least-loaded (2 vs 4 requests) would pick rank 0
    assert choose_engine(counts) == 1 and counts == [[1, 1], [1, 4]]   # its waiting + 1
    counts = [[0, 3], [0, 3]]
    assert choose_engine(counts) == 0 and counts == [[1, 3], [0, 3]]
    assert choose_engine([[0, 3], [0, 3]], start=1) == 1     # another front-end's start index


def replicas_of(res):
    r = res.records.sort_values("arrival_s")
    return dict(zip(r["id"], r["replica"]))


def test_requests_within_one_period_alternate_on_the_routers_own_counts():
    # all in [0, 0.1): one refresh (both idle), then only the router's increments: 0, 1, 0, 1
    rows = [(f"r{i}", 0.02 * i, 8, 40) for i in range(4)]
    # t = 0.15 (a new period): refreshed from the replicas, each mid-way through its first
    # step (2.5 s) with 1 running and 1 waiting (r2, r3) -> tie, rank 0; t = 0.16: after
    # the router's increment rank 0 scores 9, rank 1 5 -> rank 1
    rows += [("a", 0.15, 8, 2), ("b", 0.16, 8, 2)]
    res = run_toy(rows, "fcfs", replicas=2, router="vllm-dp",
                  policy_params={"max_num_seqs": 8})
    assert replicas_of(res) == {"r0": 0, "r1": 1, "r2": 0, "r3": 1, "a": 0, "b": 1}


def test_a_refresh_sees_the_replicas_queues_not_the_old_increments():
    # r0 (rank 0) and r1 (rank 1) at t = 0; r2 at t = 0.01 -> tie on the increments -> rank 0.
    # Rank 0's first step (r0 alone: 1 + 0.5 + 1 = 2.5 s) still runs at t = 0.5, so r2 waits
    # there: a refresh at t = 0.5 reads rank 0 = (1 waiting, 1 running) -> 5 and rank 1 =
    # (0, 1) -> 1: c goes to rank 1. d (t = 0.52, same period, no refresh): rank 1 now
    # counts (1, 1) = 5 with c's increment, rank 0 still 5 -> tie, rank 0.
    rows = [("r0", 0.0, 8, 40), ("r1", 0.0, 8, 40), ("r2", 0.01, 8, 40),
            ("c", 0.5, 8, 2), ("d", 0.52, 8, 2)]
    res = run_toy(rows, "fcfs", replicas=2, router="vllm-dp",
                  policy_params={"max_num_seqs": 8})
    assert replicas_of(res) == {"r0": 0, "r1": 1, "r2": 0, "c": 1, "d": 0}
    # the least-loaded router reads live counts: c -> rank 1 (1 < 2), d -> tie (2, 2) -> 0
    live = run_toy(rows, "fcfs", replicas=2, router="least-loaded",
                   policy_params={"max_num_seqs": 8})
    assert replicas_of(live)["c"] == 1
