from __future__ import annotations

import math

import numpy as np
import pytest

from seqsched.predictors.metrics import (acc_within, evaluate, kendall, mae, quantile_calibration,
                                round_up, spearman, target_lengths)
from seqsched.common.errors import UserError


def test_point_metrics_exact():
    pred = np.array([100, 150, 300, 40])
    tgt = np.array([120, 250, 300, 10])
    assert mae(pred, tgt) == pytest.approx((20 + 100 + 0 + 30) / 4)
    assert acc_within(pred, tgt, 50) == pytest.approx(0.75)
    assert acc_within(pred, tgt, 100) == pytest.approx(1.0)
    assert acc_within(pred, tgt, 19) == pytest.approx(0.25)
    assert spearman(pred, tgt) == pytest.approx(1.0)     # same order
    assert kendall(pred, tgt) == pytest.approx(1.0)
    assert kendall(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)
    # one swapped pair of 4: tau = (5 - 1) / 6
    assert kendall(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == pytest.approx(4 / 6)
    assert math.isnan(spearman(np.array([5, 5, 5]), np.array([1, 2, 3])))


def test_evaluate_and_calibration():
    tgt = np.arange(1, 11)
    q = {0.5: np.full(10, 5), 0.9: np.full(10, 9)}
    assert quantile_calibration(q, tgt) == {0.5: 0.5, 0.9: 0.9}
    m = evaluate(tgt + 10, tgt, q)
    assert m["mae"] == 10 and m["bias"] == 10 and m["acc50"] == 1.0
    assert m["coverage_p50"] == 0.5 and m["coverage_p90"] == 0.9 and m["n"] == 10
    with pytest.raises(ValueError):
        evaluate(np.zeros(3), np.zeros(4))


def test_round_up_and_targets(tiny_trace):
    assert round_up(np.array([0, 1, 50, 51, 100, 512])).tolist() == [50, 50, 50, 100, 100, 550]
    cols = [c for c in tiny_trace.df.columns if c.startswith("len_t")]
    assert np.array_equal(target_lengths(tiny_trace), tiny_trace.df[cols].max(axis=1))
    assert np.array_equal(target_lengths(tiny_trace, "greedy"), tiny_trace.output_tokens)
    with pytest.raises(UserError):
        target_lengths(tiny_trace, "mean")


def test_error_plots(tmp_path):
    from seqsched.predictors.metrics import error_plots

    paths = error_plots(np.array([10, 200, 90]), np.array([50, 180, 100]), tmp_path)
    assert [p.name for p in paths] == ["scatter.png", "error_hist.png"]
    assert all(p.stat().st_size > 1000 for p in paths)
