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
