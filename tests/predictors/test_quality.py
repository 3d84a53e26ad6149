"""The quality-dialled predictor: the MAE / Kendall tau it is asked for is the one it reaches,
its distribution is the inverted noise model, and bad input is one UserError line."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from seqsched.common.errors import UserError
from seqsched.predictors import make_predictor
from seqsched.predictors.distribution import length_distribution, lognormal_points, noise_points
from seqsched.traces.synthetic import alpaca_vicuna


@pytest.fixture(scope="module")
def trace():
    return alpaca_vicuna(800, seed=3)


@pytest.mark.parametrize("mae", [0, 10, 40, 120])
def test_target_mae_is_reached(trace, mae):
    p = make_predictor("quality", target_mae=mae)
    pred = p.predict(trace)
    assert abs(np.abs(pred - trace.output_tokens).mean() - mae) <= 0.01 * mae + 0.01
    assert pred.min() >= 1 and pred.dtype == np.int64


@pytest.mark.parametrize("tau", [0.3, 0.6, 0.9, 1.0])
def test_target_tau_is_reached(trace, tau):
    pred = make_predictor("quality", target_tau=tau).predict(trace)
    assert abs(stats.kendalltau(pred, trace.output_tokens).statistic - tau) < 0.01


def test_worse_quality_means_worse_predictions_from_the_same_draw(trace):
    truth = trace.output_tokens
    taus = [stats.kendalltau(make_predictor("quality", target_mae=m).predict(trace),
                             truth).statistic for m in (10, 40, 120)]
    assert taus[0] > taus[1] > taus[2]
    np.testing.assert_array_equal(make_predictor("quality", target_mae=0).predict(trace), truth)


def test_distribution_is_the_inverted_noise_model(trace):
    p = make_predictor("quality", target_mae=40)
    d = length_distribution(p, trace, "test needs")
    assert d.shape == (len(trace), 16) and (np.diff(d, axis=1) >= 0).all()
    # Laplace noise is symmetric: the middle two points straddle the prediction (where no
    # point was clipped at 1 token)
    pred = p.predict(trace)
    whole = d[:, 0] > 1
    assert whole.sum() > len(trace) / 4
    np.testing.assert_allclose((d[whole, 7] + d[whole, 8]) / 2, pred[whole])
    # a p50/p90 lognormal goes through its p50 (median between the 8th and 9th points)
    ln = lognormal_points(np.array([100.0]), np.array([200.0]))
    assert np.sqrt(ln[0, 7] * ln[0, 8]) == pytest.approx(100.0)
    assert noise_points(np.array([50.0]), "normal", 0.0).tolist() == [[50.0] * 16]


@pytest.mark.parametrize("params, needle", [
    ({}, "exactly one of target_mae"),
    ({"target_mae": 5, "target_tau": 0.5}, "exactly one of target_mae"),
    ({"target_mae": -1}, "target_mae must be a number of tokens >= 0"),
    ({"target_tau": 0}, "target_tau must be a Kendall tau in (0, 1]"),
    ({"target_tau": 1.5}, "target_tau must be a Kendall tau in (0, 1]"),
])
def test_bad_quality(params, needle):
    with pytest.raises(UserError) as e:
        make_predictor("quality", **params)
    assert needle in str(e.value) and "\n" not in str(e.value)
