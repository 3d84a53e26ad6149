"""The roofline's pure-decode step times in Python floats, for the array engine's hot path.

`prefill_time([], [], rows, ctx)` (an iteration with no prompt chunk) and the first few
`decode_times` entries of `RooflineCostModel` are a dozen scalar operations; numpy spends more
time dispatching them than computing. `DecodeTimes` performs the same IEEE operations in the
same order on Python floats (a float64 is a float64), so every time - and every cumulative sum
the engine takes of them - is the same double as the vectorised model's; the array engine's
equivalence test checks it. Only an exact `RooflineCostModel` gets it (`decode_times_for`).
"""

from __future__ import annotations

import numpy as np

from seqsched.backends.roofline import RooflineCostModel

SCALAR_ITERATIONS = 32       # up to this many iterations, a Python loop beats numpy


class DecodeTimes:
    SCALAR_ROWS = 64         # whole prompts (nothing cached) prefilled in Python up to this

    def __init__(self, cost: RooflineCostModel) -> None:
        self.cost = cost
        self.fpt, self.fl, self.fa = cost._flops_per_token, cost._flops_logits, cost._flops_attn
        self.wb, self.kv = cost._weight_bytes, cost._kv
        self.fr, self.br = cost._flops_rate, cost._byte_rate
        self.passes = 3.0 if cost.kv_append_copy else 1.0
        self.io, self.to = cost.iteration_overhead_s, cost.token_overhead_s

    def _time(self, tokens: float, rows, attended: float, kv_read: float) -> float:
        flops = tokens * self.fpt + rows * self.fl + attended * self.fa
        bytes_ = self.wb + (kv_read * self.passes + tokens) * self.kv
        a, b = flops / self.fr, bytes_ / self.br
        return (a if a >= b else b) + self.io + self.to * rows

    def first(self, rows: int, ctx: int) -> float:
        """`prefill_time(empty, empty, rows, ctx)`: one iteration of `rows` decode rows."""
        return self._time(0.0 + rows, rows, 0.0 + ctx, 0.0 + ctx)

    def prefill(self, chunks: list[int], decode_rows: int, decode_context: int,
                past: list[int] | None = None) -> float:
        """`prefill_time(chunks, past, decode_rows, decode_context)` (`past` None: nothing
        cached). Every partial sum is a whole or half token count far below 2**53, so it is
        exact in any order and equals numpy's pairwise sums."""
        if past is None and len(chunks) == 1:          # the same operations, unrolled
            c = float(chunks[0])
            attended = float(c * (0.0 + (c + 1.0) / 2.0)) + decode_context
            return self._time(c + decode_rows, 1 + decode_rows, attended, 0.0 + decode_context)
        new = [float(c) for c in chunks]
        tokens = sum(new) + decode_rows
        if past is None:
            attended = float(sum(c * (0.0 + (c + 1.0) / 2.0) for c in new)) + decode_context
            return self._time(tokens, len(new) + decode_rows, attended, 0.0 + decode_context)
        attended = float(sum(c * (p + (c + 1.0) / 2.0) for c, p in zip(new, past)))
        return self._time(tokens, len(new) + decode_rows, attended + decode_context,
                          float(sum(past)) + decode_context)

    def run(self, first: float, rows: int, context_sum: int, k: int,
            stop_after: float | None) -> tuple[int, float]:
        """(n, ends[n - 1]) of a step of up to k iterations that stops at the end of the
        first iteration ending at or after `stop_after`, where ends = cumsum([first,
        *decode_times(rows, context_sum, k - 1)]) - as `CostModelExecutor.run`, but computing
        only the iterations that run (in Python while they are few)."""
        if k == 1 or (stop_after is not None and first >= stop_after):
            return 1, first
        # _time(r, r, x, x) inlined, its operations in the same order; x = c + r * j is a whole
        # number below 2**53, so adding r each iteration gives the same double
        r, x, acc = float(rows), float(context_sum) - float(rows), first
        flops0 = r * self.fpt + r * self.fl
        fa, passes, kv, wb, fr, br = self.fa, self.passes, self.kv, self.wb, self.fr, self.br
        io, tr = self.io, self.to * r
        stop = float("inf") if stop_after is None else stop_after
        scalar = min(k - 1, SCALAR_ITERATIONS)
        for j in range(scalar):
            x += r
            a = (flops0 + x * fa) / fr
            b = (wb + (x * passes + r) * kv) / br
            acc = acc + ((a if a >= b else b) + io + tr)
            if acc >= stop:
                return j + 2, acc
        if scalar == k - 1:
            return k, acc
        ends = np.cumsum(np.concatenate(([first], self.cost.decode_times(rows, context_sum,
                                                                         k - 1))))
        n = k if stop_after is None else min(int(np.searchsorted(ends, stop_after)) + 1, k)
        return n, float(ends[n - 1])


class ShapeDecodeTimes(DecodeTimes):
    """`DecodeTimes` of a roofline with a kernel `shape`: a decode step's terms that do not
    grow with the context (GEMMs, LM head, elementwise, floors, all-reduce, MoE experts) are
    one `_base` per step, the same double the vectorised model computes; the attention terms
    are the same operations in the same order as `RooflineCostModel._time_shape`."""

    def _time(self, tokens: float, rows, attended: float, kv_read: float) -> float:
        return self.cost._time_shape(tokens, rows, attended, kv_read)

    def prefill(self, chunks: list[int], decode_rows: int, decode_context: int,
                past: list[int] | None = None) -> float:
        t = super().prefill(chunks, decode_rows, decode_context, past)
        return t + self.cost.mixed_extra(decode_rows, decode_context) if chunks else t

    def run(self, first: float, rows: int, context_sum: int, k: int,
            stop_after: float | None) -> tuple[int, float]:
        if k == 1 or (stop_after is not None and first >= stop_after):
            return 1, first
        cost, r = self.cost, float(rows)
        base, fa, kv = cost._base(r, r), cost._fa_s, cost._kv_s
        x, acc, passes, io, tr = float(context_sum) - r, first, self.passes, self.io, self.to * r
        stop = float("inf") if stop_after is None else stop_after
        scalar = min(k - 1, SCALAR_ITERATIONS)
        for j in range(scalar):
            x += r
            acc = acc + (base + x * fa + (x * passes + r) * kv + io + tr)
            if acc >= stop:
                return j + 2, acc
        if scalar == k - 1:
            return k, acc
        ends = np.cumsum(np.concatenate(([first], cost.decode_times(rows, context_sum, k - 1))))
        n = k if stop_after is None else min(int(np.searchsorted(ends, stop_after)) + 1, k)
        return n, float(ends[n - 1])


def decode_times_for(cost) -> DecodeTimes | None:
    """A roofline with a kernel shape: any TP and MoE (its per-step base holds the all-reduce
    and expert terms). Without: only a single-GPU dense model - `DecodeTimes` has no
    all-reduce term (tp > 1) and no token-dependent expert bytes (MoE)."""
    if type(cost) is not RooflineCostModel:
        return None
    if cost.shape is not None:
        return ShapeDecodeTimes(cost)
    if max(int(cost.tp), 1) > 1 or cost.model.n_experts:
        return None
    return DecodeTimes(cost)
