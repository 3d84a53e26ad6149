"""vLLM's async scheduling in the array engine: `seqsched.sim.async_lag` (which documents
what vLLM does and cites it) on the array replica's columns, with the same decisions.

The plan of a step is the one vLLM made when the previous step's last iteration began, so:
- a request that joined after that moment (`cutoff`) is kept out of the waiting heap until the
  plan is made (new requests wait in `recent` until a plan; those joined by the cutoff are
  pushed before it, the rest after it);
- rows that finished in the previous step keep their slot (`ArrayReplica.held_slots`, read by
  `schedule`) and their KV blocks through the plan, freed right after it;
- a step planned with something hidden or held runs one iteration; a plan with nothing to run
  while something was hidden or held is made again at once with everything known (the GPU
  would idle: vLLM plans as soon as the outputs are read).

The cutoff (start of the step's last iteration) is computed only when a request joined during
the step, by timing the step's first n - 1 iterations again (`_advance` of n - 1: the same
prefix sums, so the same double as the object engine's `StepResult.last_iteration_s`).
"""

from __future__ import annotations

import dataclasses

from seqsched.sim.fast.advance import _advance


class ArrayLag:
    """One array replica's lag state: new requests not yet planned, the last step (for its
    cutoff), and the slots and blocks rows finished in it still hold."""

    __slots__ = ("recent", "last", "held_rows", "held_blocks")

    def __init__(self) -> None:
        self.recent: list[tuple[int, float]] = []   # (trace position, time it joined)
        self.last: tuple | None = None              # the step just run: _advance's inputs
        self.held_rows = 0
        self.held_blocks = 0

    def stepped(self, start: float, first: float, rows: int, context_sum: int, n: int,
                spread: dict | None) -> None:
        self.last = (start, first, rows, context_sum, n, spread)

    def _cutoff(self, rep) -> float:
        start, first, rows, context_sum, n, spread = self.last
        last = 0.0 if n <= 1 else _advance(rep, first, rows, context_sum, n - 1, None,
                                           spread)[1]
        return start + last

    def plan(self, rep, schedule):
        """The next Plan of array replica `rep` under the lag (`schedule(rep)` makes it)."""
        hidden: list[int] = []
        if self.recent:
            last = self.last
            # joined by the step's start: never hidden (the cutoff is at or after it)
            cutoff = (self._cutoff(rep) if last is not None
                      and any(t > last[0] for _, t in self.recent) else None)
            for i, t in self.recent:
                if cutoff is not None and t > cutoff:
                    hidden.append(i)
                else:
                    rep.enqueue(i)
            self.recent = []
        self.last = None
        held = self.held_rows
        rep.held_slots = held
        try:
            plan = schedule(rep)
        finally:
            rep.held_slots = 0
            for i in hidden:
                rep.enqueue(i)
            rep.kv.used_blocks -= self.held_blocks      # step n's output read: freed
            self.held_rows = self.held_blocks = 0
        if not (hidden or held):
            return plan
        if plan is None:                                # the GPU would idle: all known
            return self.plan(rep, schedule)
        # what was hidden or held is known to the next plan: this step may not run on
        return plan if plan.max_iterations == 1 else dataclasses.replace(plan,
                                                                         max_iterations=1)
