"""CostModelExecutor: a cost model that says it pads continuous batches (the live executor's
profile) is charged rows x longest context; others the summed context (paged attention)."""

from __future__ import annotations

import numpy as np

from seqsched.backends.executor import iteration_times
from seqsched.sim.step import Step
from seqsched.sim.sequence import Seq


class Recorder:
    """A cost model that records what it is asked (context sums, widths)."""

    name = "recorder"

    def __init__(self, pads):
        self.pads_to_longest = pads
        self.calls = []

    def prefill_time(self, new_tokens, past_tokens, decode_rows=0, decode_context=0):
        self.calls.append(("prefill", list(np.asarray(new_tokens)), list(np.asarray(past_tokens)),
                           decode_rows, decode_context))
        return 1.0

    def decode_times(self, rows, context_sum, iterations):
        self.calls.append(("decode", rows, context_sum, iterations))
        return np.ones(iterations)


def decoding(i, prompt, generated):
    return Seq(i, f"s{i}", 0.0, prompt, 100, 100, target_tokens=100, prefilled=prompt,
               generated=generated)


def test_paged_batches_charge_summed_context():
    rows = [decoding(0, 10, 1), decoding(1, 90, 10)]          # contexts 11 and 100
    cost = Recorder(pads=False)
    times = iteration_times(cost, Step(rows, [0, 0]), 3)
    assert times.tolist() == [1.0, 1.0, 1.0]
    assert cost.calls[0] == ("prefill", [], [], 2, 111)
    assert cost.calls[1] == ("decode", 2, 113, 2)             # each row one token longer


def test_padded_batches_charge_longest_context_and_widest_chunk():
    fresh = Seq(2, "s2", 0.0, 30, 100, 100, target_tokens=100)
    rows = [decoding(0, 10, 1), decoding(1, 90, 10), fresh]
    cost = Recorder(pads=True)
    iteration_times(cost, Step(rows, [0, 0, 30]), 2)
    # iteration 0: 3 rows x 30 new tokens on 99 cached positions (the longest)
    assert cost.calls[0] == ("prefill", [30, 30, 30], [99, 99, 99], 0, 0)
    # then 3 rows x (longest after iteration 0: 99 + 0 + 1 + 1 = 101)
    assert cost.calls[1] == ("decode", 3, 3 * 101, 1)
