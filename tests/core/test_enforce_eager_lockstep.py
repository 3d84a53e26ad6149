"""A DP lockstep group under `RunConfig(enforce_eager=True)` (vLLM's --enforce-eager) runs
every rank at its own token count: no CUDA graphs, no padding to a capture size. Hand-computed
with test_dp_padding's toy (C + D rows + B prompt tokens + P padded + M gathered tokens)."""

from __future__ import annotations

from test_dp_padding import B, M, P, ToyDPCost, times, trace

from seqsched.app.run import RunConfig, simulate
from seqsched.backends.executor import CostModelExecutor


def run(rows, eager: bool):
    cfg = RunConfig(policy="fcfs", replicas=2, router="round-robin", dp_lockstep=2,
                    policy_params={"max_num_seqs": 32}, enforce_eager=eager)
    return simulate(trace(rows), cfg, executor=CostModelExecutor(ToyDPCost()))


def test_eager_ranks_are_not_padded():
    rows = [("r0", 0, 8, 2), ("r1", 0, 37, 1)]
    # with graphs: both ranks padded to bucket(37) = 40, gathered 80 -> 1.5 + 37 B + 40 P + 80 M
    assert times(run(rows, False), "r1") == (7.375, 7.375)
    assert 1.5 + 37 * B + 40 * P + 80 * M == 7.375
    # eager: unpadded, gathered 8 + 37 = 45 -> 1.5 + 37 B + 37 P + 45 M
    first, _ = times(run(rows, True), "r1")
    assert first == 1.5 + 37 * B + 37 * P + 45 * M
