"""`quality`: a noisy predictor dialled to a target quality, for the gain-vs-predictor-quality
map (`seqsched sweep --predictor quality --grid predictor.target_mae=0,25,50,100`).

Give exactly one of
- `target_mae` (tokens): Laplace noise whose scale is solved (bisection) so that the MAE of the
  rounded, clipped predictions against the true lengths is the target on this trace;
- `target_tau` (Kendall's tau in (0, 1]): lognormal (multiplicative) noise whose sigma is
  solved so that Kendall's tau between predictions and true lengths is the target — the
  rank quality a learning-to-rank predictor is judged by (Fu et al. 2024).
The noise draw is seeded (`seed`) and fixed while the scale is solved, so a quality sweep
degrades one set of errors smoothly. Its distribution (for `gittins`) is the inverted noise
model with the solved scale (`predictors.distribution.noise_points`). Free on the timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqsched.common.params import is_number, is_whole
from seqsched.predictors.base import PredictorCost
from seqsched.predictors.distribution import noise_points
from seqsched.traces.request import Trace


def _bisect(f, target: float, hi: float, decreasing: bool = False, steps: int = 60) -> float:
    """The scale s in [0, hi] with f(s) ~ target, f monotone (up, or down if decreasing)."""
    lo = 0.0
    for _ in range(steps):
        mid = (lo + hi) / 2
        above = f(mid) > target
        if above != decreasing:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2


@dataclass
class QualityPredictor:
    target_mae: float | None = None
    target_tau: float | None = None
    seed: int = 0
    name: str = "quality"

    def __post_init__(self) -> None:
        if (self.target_mae is None) == (self.target_tau is None):
            raise ValueError("give exactly one of target_mae (tokens) or target_tau "
                             "(Kendall's tau), e.g. --predictor-param target_mae=50")
        if self.target_mae is not None and (not is_number(self.target_mae)
                                            or not self.target_mae >= 0):
            raise ValueError(f"target_mae must be a number of tokens >= 0, got "
                             f"{self.target_mae!r}")
        if self.target_tau is not None and (not is_number(self.target_tau)
                                            or not 0 < self.target_tau <= 1):
            raise ValueError(f"target_tau must be a Kendall tau in (0, 1], got "
                             f"{self.target_tau!r}")
        if not is_whole(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {self.seed!r}")
        self._memo: tuple | None = None

    @property
    def dist(self) -> str:
        return "laplace" if self.target_mae is not None else "lognormal"

    def _solve(self, trace: Trace) -> tuple[np.ndarray, float]:
        key = (len(trace), hash(trace.output_tokens.tobytes()))
        if self._memo is not None and self._memo[0] == key:
            return self._memo[1]
        truth = trace.output_tokens.astype(float)
        rng = np.random.default_rng(self.seed)
        if self.dist == "laplace":
            z = rng.laplace(0.0, 1.0, len(truth))

            def make(s):
                return np.maximum(np.rint(truth + s * z), 1)

            def mae(s):
                return float(np.abs(make(s) - truth).mean())

            scale = 0.0 if self.target_mae == 0 else _bisect(mae, self.target_mae,
                                                             hi=8 * self.target_mae + 8)
        else:
            z = rng.standard_normal(len(truth))

            def make(s):
                return np.maximum(np.rint(truth * np.exp(s * z)), 1)

            from scipy import stats  # here: importing scipy.stats costs ~0.6 s

            def tau(s):
                return float(stats.kendalltau(make(s), truth).statistic)

            scale = 0.0 if self.target_tau >= 1 else _bisect(tau, self.target_tau, hi=20.0,
                                                             decreasing=True, steps=30)
        out = (make(scale).astype(np.int64), scale)
        self._memo = (key, out)
        return out

    def predict(self, trace: Trace) -> np.ndarray:
        return self._solve(trace)[0].copy()

    def predict_distribution(self, trace: Trace, points: int) -> np.ndarray:
        pred, scale = self._solve(trace)
        return noise_points(pred, self.dist, scale, points)

    def achieved(self, trace: Trace) -> dict:
        """The quality actually reached on `trace` (MAE, Kendall tau) and the solved scale."""
        from scipy import stats

        pred, scale = self._solve(trace)
        truth = trace.output_tokens
        return {"mae": float(np.abs(pred - truth).mean()),
                "kendall_tau": float(stats.kendalltau(pred, truth).statistic), "scale": scale}

    def cost(self, trace: Trace) -> PredictorCost:
        return PredictorCost()
