"""Re-prediction while a response is written (TRAIL: Shahout et al. 2024, arXiv:2410.01035,
re-predicts the remaining length from the model's own embeddings after every token; ELIS
re-predicts every fixed number of tokens). Every `every` generated tokens the replica asks for
a new estimate of a running request and charges `cost_s` modelled seconds per request on the
timeline (a policy parameter: `repredict_every`, `repredict_s`, `repredict`).

Two ways to re-predict:
- `conditional`: the request's own predicted distribution conditioned on what it has
  written, L given L > g: the new estimate is g + E[L - g | L > g]. It needs a predictor with
  a distribution (see `predictors.distribution`); it sharpens only as far as that
  distribution allows (a long request outliving its short branch is re-ranked).
- `sharpen`: a predictor whose error shrinks as the response is written, as TRAIL measures
  for its embedding classifier: what is left is estimated as (L - g) * exp(s * z), z a seeded
  standard normal, with s = s0 * sqrt((L - g) / L) falling to 0 at the end; s0 is the
  initial predictions' log-error spread on this trace (std of log(predicted / true)). Its
  distribution for `gittins` is the lognormal of that error around the new estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.policies.gittins import expected_remaining
from seqsched.predictors.distribution import levels
from seqsched.sim.reprediction import EveryN
from seqsched.sim.sequence import Seq


@dataclass
class Repredictor(EveryN):
    every: int
    cost_s: float = 0.0
    mode: str = "conditional"
    sigma0: float = 0.0
    seed: int = 0
    points: int = 16

    def update(self, seq: Seq) -> tuple[int, object]:
        g = seq.generated
        if self.mode == "conditional":
            pts = seq.dist if seq.dist is not None else np.array([float(seq.predicted)])
            return int(round(g + expected_remaining(pts, g))), seq.dist
        left = max(seq.output_tokens - g, 1)
        s = self.sigma0 * float(np.sqrt(left / max(seq.output_tokens, 1)))
        z = np.random.default_rng([self.seed, seq.idx, g]).standard_normal()
        est = left * float(np.exp(s * z))
        from scipy import stats  # here: importing scipy.stats costs ~0.6 s

        dist = g + est * np.exp(s * stats.norm.ppf(levels(self.points)))
        return max(int(round(g + est)), g + 1), np.maximum(dist, g + 1.0)


def log_error_spread(predicted: np.ndarray, truth: np.ndarray) -> float:
    """std of log(predicted / true): the initial predictions' multiplicative error."""
    p = np.maximum(np.asarray(predicted, dtype=float), 1.0)
    t = np.maximum(np.asarray(truth, dtype=float), 1.0)
    return float(np.std(np.log(p / t)))


def make_repredictor(policy, predicted: np.ndarray, truth: np.ndarray,
                     seed: int = 0) -> Repredictor | None:
    every = getattr(policy, "repredict_every", None)
    if every is None:
        return None
    return Repredictor(every, float(policy.repredict_s), policy.repredict,
                       log_error_spread(predicted, truth), seed)
