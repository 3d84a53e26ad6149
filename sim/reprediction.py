"""The re-prediction contract the replica runs (TRAIL, ELIS: a running request's length
estimate is updated every `every` generated tokens). Predictors (a floor above) implement
it; the replica stops a batch where a row is due, charges `cost_s` per updated request on
the timeline, then writes the new estimate into the row (the only writer of `Seq`)."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from seqsched.sim.sequence import Seq


class Repredictor(Protocol):
    every: int          # generated tokens between two updates of a request
    cost_s: float       # modelled seconds per updated request

    def update(self, seq: Seq) -> tuple[int, object]:
        """(new predicted total length, new distribution or None) for a running `seq`."""

    def horizon(self, generated: np.ndarray) -> int:
        """Iterations until the first row reaches its next multiple of `every` tokens."""

    def due(self, generated: int) -> bool:
        """Whether a row with `generated` tokens is at a re-prediction point."""


class EveryN:
    """The schedule half of a Repredictor: every `every` generated tokens."""

    every: int

    def horizon(self, generated: np.ndarray) -> int:
        return int((self.every - generated % self.every).min())

    def due(self, generated: int) -> bool:
        return generated > 0 and generated % self.every == 0


def repredict(replica, seqs: list[Seq]):
    """The replica's re-prediction step (a SimPy generator): update the remaining-length
    estimate of running rows at their re-prediction point, charging the modelled cost on
    the timeline before it takes effect. Only the replica calls it (it writes the rows)."""
    if not seqs:
        return
    start = replica.env.now
    duration = replica.repredictor.cost_s * len(seqs)
    if duration > 0:
        yield replica.env.timeout(duration)
    replica.engine.log_step(replica.index, start, replica.env.now, "repredict", len(seqs), 1, 0,
                            0, replica.kv.used_tokens)
    for s in seqs:
        s.predicted, s.dist = replica.repredictor.update(s)
