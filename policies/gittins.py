"""Distribution-aware ranking: `gittins` and its simpler sibling `srpt-expected`.

Each request carries a predicted length distribution (`Seq.dist`: sorted, equally likely
points, from `predictors.distribution`). Given the g tokens a request has generated, what is
left is the conditional distribution of L - g given L > g.

- `gittins` ranks by the Gittins index (Gittins 1989; for M/G/1 mean response time, see
  Scully, Harchol-Balter and Scheller-Wolf 2018, "SOAP"; Aalto, Ayesta and Righter 2009):
  G(g) = sup_D P(L - g <= D | L > g) / E[min(L - g, D) | L > g], the best completion rate
  per unit of further service. Serving the highest index first minimises mean response time
  in an M/G/1 queue with known size distributions (preemptive, no switching cost). The rank
  is 1/G, in tokens: an "effective remaining length" (so `aging` keeps its unit).
  A job whose distribution has a short, likely branch (a two-point {1, 100}) ranks well when
  young and falls back once it has outlived that branch.
- `srpt-expected` ranks by E[L - g | L > g] (SRPT on the expected remaining length).

A request that has outlived every point of its distribution is taken to have its largest
point still to go: it is a long one, and must not jump the queue because its predictor
knows nothing more about it.
Both are non-preemptive by default (`preemptive=true` lets better-ranked waiting requests
displace running ones; the batch then stops where a running row passes one of its points,
the only moments its rank can get worse).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from seqsched.policies.continuous import ContinuousPolicy
from seqsched.sim.sequence import Seq


def remaining(points: np.ndarray, generated: int) -> np.ndarray:
    """What is left, L - g given L > g, as sorted equally likely points."""
    left = points[points > generated] - generated
    if left.size == 0:
        left = points[-1:].astype(float)
    return left


def gittins_rank(points: np.ndarray, generated: int) -> float:
    """1 / Gittins index: min over quanta D = y_j of E[min(Y, D)] / P(Y <= D)."""
    y = remaining(points, generated)
    m = y.size
    j = np.arange(m)
    served = np.cumsum(y) + (m - j - 1) * y          # m * E[min(Y, y_j)]
    return float((served / (j + 1)).min())


def expected_remaining(points: np.ndarray, generated: int) -> float:
    return float(remaining(points, generated).mean())


def age(seq: Seq) -> int:
    """Tokens served, counting attempts a restart threw away (what is known: L > them);
    a restarted request cannot look young again and displace back forever."""
    return seq.generated + seq.wasted_tokens


def _points(seq: Seq) -> np.ndarray:
    if seq.dist is None:             # no distribution attached: a point mass at the estimate
        return np.array([float(max(seq.predicted, 1))])
    return seq.dist


@dataclass
class GittinsPolicy(ContinuousPolicy):
    needs_distribution: ClassVar[bool] = True
    reads_predictions = True            # ranks by the predicted distribution
    name: str = "gittins"

    def rank(self, seq: Seq) -> float:
        return gittins_rank(_points(seq), age(seq))

    def horizon(self, view, rows: list[Seq]) -> int:
        if not (self.preemptive and len(view.waiting)):
            return self.max_iterations
        left = [self.max_iterations]
        for s in rows:
            p = _points(s)
            ahead = p[p > age(s)]
            if ahead.size:
                left.append(int(np.ceil(ahead[0] - age(s))))
        return max(min(left), 1)


@dataclass
class SRPTExpectedPolicy(GittinsPolicy):
    name: str = "srpt-expected"

    def rank(self, seq: Seq) -> float:
        return expected_remaining(_points(seq), age(seq))
