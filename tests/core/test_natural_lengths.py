"""Natural-length mode (a live model stops at EOS): the engine takes each row's length from
the executor's `eos_at` instead of the trace, for static and continuous steps."""

from __future__ import annotations

from dataclasses import dataclass

from seqsched.backends.executor import CostModelExecutor
from coretoy import ToyCost, trace
from seqsched.sim.step import StepResult
from seqsched.app.run import RunConfig, simulate


@dataclass
class EOSExecutor:
    """The toy cost model, with the 'model' emitting EOS after `lengths[id]` tokens."""

    lengths: dict
    length_mode: str = "natural"
    name: str = "eos"

    def __post_init__(self):
        self.inner = CostModelExecutor(ToyCost())

    def run(self, step, iterations, stop_after_s):
        done_at = {}
        for s in step.seqs:
            left = self.lengths[s.id] - (0 if step.padded else s.generated)
            if left <= iterations:
                done_at[s.id] = left - 1                  # iteration index of the EOS token
        if step.padded and len(done_at) == len(step.seqs):
            iterations = max(done_at.values()) + 1        # everyone stopped: the batch ends
        elif not step.padded and done_at:
            iterations = min(done_at.values()) + 1        # a continuous step ends at an EOS
        r = self.inner.run(step, iterations, stop_after_s)
        eos = {k: v for k, v in done_at.items() if v < r.iterations}
        return StepResult(r.duration_s, r.iterations, r.first_iteration_s, eos)

    def release(self, seq):
        pass


def test_static_natural_lengths_override_the_trace():
    # the trace claims 9 and 2 tokens; the model stops after 3 and 5
    t = trace([("a", 0.0, 4, 9), ("b", 0.0, 4, 2)])
    ex = EOSExecutor({"a": 3, "b": 5})
    res = simulate(t, RunConfig(policy="vanilla", policy_params={"batch_size": 2},
                                predictor="none"), executor=ex)
    rec = res.records.set_index("id")
    assert rec.loc["a", "generated_tokens"] == 3 and rec.loc["b", "generated_tokens"] == 5
    # one padded batch of 5 iterations: prefill 1 + 0.5*2 + 0.125*8 = 3, then 4 x 2 = 8
    assert rec["finish_s"].tolist() == [11.0, 11.0]
    assert res.steps["iterations"].tolist() == [5]


def test_static_natural_row_without_eos_is_truncated_at_the_cap():
    t = trace([("a", 0.0, 4, 3), ("b", 0.0, 4, 3)])
    ex = EOSExecutor({"a": 2, "b": 50})
    res = simulate(t, RunConfig(policy="vanilla", policy_params={"batch_size": 2,
                                                                 "max_new_tokens": 6},
                                predictor="none"), executor=ex)
    rec = res.records.set_index("id")
    assert rec.loc["a", "generated_tokens"] == 2 and not rec.loc["a", "truncated"]
    assert rec.loc["b", "generated_tokens"] == 6 and rec.loc["b", "truncated"]


def test_continuous_natural_lengths():
    t = trace([("a", 0.0, 4, 9), ("b", 0.0, 4, 9)])
    ex = EOSExecutor({"a": 2, "b": 4})
    res = simulate(t, RunConfig(policy="fcfs", predictor="none"), executor=ex)
    rec = res.records.set_index("id")
    assert rec["generated_tokens"].tolist() == [2, 4]
    # iteration 0: prefill of both (1 + 1 + 1 = 3); iteration 1: decode 2 rows (2) -> a ends
    # at 5; then b alone: 2 more iterations of 1.5 -> 8
    assert rec["finish_s"].tolist() == [5.0, 8.0]
