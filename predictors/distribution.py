"""Predicted length *distributions* for the distribution-aware policies (`gittins`,
`srpt-expected`): per request, `points` sorted, equally likely lengths (quantiles at
(k + 0.5) / points), one row per request in trace order.

Where each predictor's distribution comes from:
- `oracle`: the true length (a point mass; Gittins is then SRPT);
- `max-of-samples`: the trace's own sampled lengths (`len_t*` columns), an empirical
  distribution per prompt;
- `noisy` / `quality`: the predictor's known error model inverted (flat prior): the truth is
  the prediction minus the noise, so its quantiles are the prediction minus the noise's;
- `from-file`, `column`, `proxy`: the p50 and p90 quantiles (`predicted_p50`/`_p90` columns,
  or the proxy's quantile/classification heads) fitted by a lognormal per request.
`none` and the LLM predictors give a single number and no distribution.
"""

from __future__ import annotations

import numpy as np

from seqsched.common.errors import UserError
from seqsched.predictors.basic import (MaxOfSamplesPredictor, NoisyPredictor, OraclePredictor,
                                       sample_columns)
from seqsched.traces.request import Trace

POINTS = 16
HAVE_DISTRIBUTIONS = ("oracle, max-of-samples (with per-sample len_t* columns), noisy, "
                      "quality, from-file/column (with predicted_p50 and predicted_p90 "
                      "columns), proxy")
# scipy.stats is imported inside the functions that need it: importing it costs ~0.6 s, which
# every command that merely imports the predictors (any simulate) would otherwise pay.


def levels(points: int = POINTS) -> np.ndarray:
    return (np.arange(points) + 0.5) / points


def noise_points(predicted: np.ndarray, dist: str, scale: float,
                 points: int = POINTS) -> np.ndarray:
    """Quantiles of the truth given a prediction = truth + noise (or truth * exp(noise))."""
    from scipy import stats

    u = levels(points)
    pred = np.asarray(predicted, dtype=float)[:, None]
    if dist == "lognormal":
        out = pred * np.exp(-scale * stats.norm.ppf(u))[None, :]
    else:
        ppf = stats.laplace.ppf(u) if dist == "laplace" else stats.norm.ppf(u)
        out = pred - scale * ppf[None, :]
    return np.sort(np.maximum(out, 1.0), axis=1)


def lognormal_points(p50: np.ndarray, p90: np.ndarray, points: int = POINTS) -> np.ndarray:
    """A lognormal per request through its p50 and p90 (sigma >= 0)."""
    from scipy import stats

    z90 = float(stats.norm.ppf(0.9))
    mu = np.log(np.maximum(np.asarray(p50, dtype=float), 1.0))
    sigma = np.maximum(np.log(np.maximum(np.asarray(p90, dtype=float), 1.0)) - mu, 0.0) / z90
    z = stats.norm.ppf(levels(points))
    return np.sort(np.maximum(np.exp(mu[:, None] + sigma[:, None] * z[None, :]), 1.0), axis=1)


def _from(predictor, trace: Trace, points: int) -> np.ndarray | None:
    if hasattr(predictor, "predict_distribution"):
        return predictor.predict_distribution(trace, points)
    if isinstance(predictor, OraclePredictor):
        return trace.output_tokens.astype(float)[:, None]
    if isinstance(predictor, MaxOfSamplesPredictor):
        cols = sample_columns(trace)
        if not cols:
            return None
        return np.sort(np.maximum(trace.df[cols].to_numpy(dtype=float), 1.0), axis=1)
    if isinstance(predictor, NoisyPredictor):
        return noise_points(predictor.predict(trace), predictor.dist, predictor.scale, points)
    if hasattr(predictor, "predict_quantiles"):
        q = predictor.predict_quantiles(trace)
        if 0.5 in q and 0.9 in q:
            return lognormal_points(q[0.5], q[0.9], points)
    return None


def length_distribution(predictor, trace: Trace, needs: str,
                        points: int = POINTS) -> np.ndarray:
    """[requests, k] sorted points; a UserError naming the predictors that have one.
    `needs` says who needs it ("policy gittins ranks by")."""
    out = _from(predictor, trace, points)
    if out is None:
        raise UserError(f"{needs} a predicted length distribution and predictor "
                        f"{predictor.name} gives none here; use one that does: "
                        f"{HAVE_DISTRIBUTIONS}")
    out = np.asarray(out, dtype=float)
    if out.ndim != 2 or len(out) != len(trace):
        raise UserError(f"predictor {predictor.name} returned a distribution of shape "
                        f"{out.shape} for {len(trace)} requests")
    return out
