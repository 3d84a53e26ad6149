"""`vllm-dp`: vLLM's internal data-parallel load balancer (vLLM 0.19.0, Apache-2.0).

The front-end (`DPLBAsyncMPClient`, the client `AsyncLLM` and `vllm serve` use for
data_parallel_size > 1 without an external balancer: vllm/v1/engine/core_client.py:124-129)
sends a request to the engine with the lowest `waiting * 4 + running`, scanning from its own
start index (0 for a single front-end), so ties go to the lowest rank
(core_client.py:1337-1361). The counts are not live: each engine publishes its
(running, waiting) after a step when they changed (v1/engine/core.py:1683-1694,
`Scheduler.get_request_counts` v1/core/sched/scheduler.py:1729), and the DP coordinator
forwards them to the front-end at most every `min_stats_update_interval_ms` = 100 ms while
they change (v1/engine/coordinator.py:155, 262-284); the front-end overwrites its copy with
each one (core_client.py:1256-1274). Between two updates it adds 1 (its client count) to the
chosen engine's waiting count (core_client.py:1359-1361), so consecutive requests spread.

Modelled: the front-end's copy is refreshed from the replicas' own waiting and running
counts the first time a request is routed in a new 100-ms period of simulated time (periods
from t = 0), then it only grows by the router's own increments until the next refresh.
The coordinator's real publication instants depend on its poll wake-ups and on when each
engine's step ends (not knowable from a recorded run), and it forwards the counts of the step
before the newest (`last_step_counts`); both are approximated by the state at the refresh.
"""

from __future__ import annotations

import math

from seqsched.sim.sequence import Seq

PERIOD_S = 0.1              # coordinator.py:155 min_stats_update_interval_ms
WAITING_WEIGHT = 4          # core_client.py:1351 score = waiting * 4 + running


def dp_score(waiting: int, running: int) -> int:
    return waiting * WAITING_WEIGHT + running


def choose_engine(counts: list[list[int]], start: int = 0) -> int:
    """vLLM's pick over [waiting, running] per engine: the lowest score, the first found in
    scan order from `start` on a tie; the chosen engine's waiting grows by one in place."""
    n = len(counts)
    best, choice = math.inf, start % n
    for i in range(n):
        idx = (start + i) % n
        score = dp_score(*counts[idx])
        if score < best:
            best, choice = score, idx
    counts[choice][0] += 1
    return choice


def route_vllm_dp(engine, seq: Seq) -> int:
    state = engine.route_state.setdefault("vllm-dp", {"period": -1, "counts": None})
    period = math.floor(engine.env.now / PERIOD_S + 1e-9)
    if state["counts"] is None or period > state["period"]:
        state["period"] = period
        state["counts"] = [[len(r.waiting), len(r.running)] for r in engine.replicas]
    return choose_engine(state["counts"])


__all__ = ["route_vllm_dp", "choose_engine", "dp_score", "PERIOD_S"]
