"""Accuracy metrics for length predictors, and the targets they are scored against.

The paper (Zheng et al. 2023) scores its LoRA-tuned length query against the max over four
sampled generations (temperatures 0, 0.3, 0.5, 0.7): mean absolute error, and the share of
requests predicted within 50 / 100 tokens (Acc-50, Acc-100). Its *training* label is that max
rounded up to a multiple of 50. The schedule itself runs greedily, so the greedy length is the
other target worth reporting.
"""

from __future__ import annotations

import numpy as np

from seqsched.predictors.basic import max_of_samples
from seqsched.common.errors import UserError
from seqsched.traces.request import Trace

TARGETS = ("max-over-samples", "greedy")


def round_up(x: np.ndarray, multiple: int = 50) -> np.ndarray:
    """Round up to a multiple (the paper's label: ceil(max / 50) * 50); 0 stays `multiple`."""
    x = np.asarray(x, dtype=np.int64)
    return np.maximum(-(-x // multiple) * multiple, multiple)


def target_lengths(trace: Trace, target: str = "max-over-samples") -> np.ndarray:
    """`max-over-samples`: max over the trace's `len_t<T>` columns (or its `max_of_samples`
    column); `greedy`: the trace's `output_tokens`."""
    if target == "greedy":
        return trace.output_tokens.copy()
    if target == "max-over-samples":
        return max_of_samples(trace)
    raise UserError(f"unknown target {target!r}; use one of {', '.join(TARGETS)}")


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(target, float))))


def acc_within(pred: np.ndarray, target: np.ndarray, tol: float) -> float:
    """Share of requests with |pred - target| <= tol (the paper's Acc-50 / Acc-100)."""
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(target, float)) <= tol))


def spearman(pred: np.ndarray, target: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.ptp(pred) == 0 or np.ptp(target) == 0:
        return float("nan")
    return float(spearmanr(pred, target).statistic)


def kendall(pred: np.ndarray, target: np.ndarray) -> float:
    """Kendall tau-b (ties handled), the ranking metric of learning-to-rank schedulers."""
    from scipy.stats import kendalltau

    if np.ptp(pred) == 0 or np.ptp(target) == 0:
        return float("nan")
    return float(kendalltau(pred, target).statistic)


def quantile_calibration(quantiles: dict[float, np.ndarray], target: np.ndarray) -> dict:
    """For each quantile q: the share of targets at or below the q-prediction (ideal: q)."""
    target = np.asarray(target, float)
    return {float(q): float(np.mean(target <= np.asarray(v, float)))
            for q, v in sorted(quantiles.items())}


def evaluate(pred: np.ndarray, target: np.ndarray,
             quantiles: dict[float, np.ndarray] | None = None) -> dict:
    """All point metrics (and quantile coverage when given) in one flat dict."""
    pred = np.asarray(pred)
    target = np.asarray(target)
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} != target shape {target.shape}")
    out = {
        "n": int(len(pred)),
        "mae": mae(pred, target),
        "acc50": acc_within(pred, target, 50),
        "acc100": acc_within(pred, target, 100),
        "spearman": spearman(pred, target),
        "kendall": kendall(pred, target),
        "bias": float(np.mean(np.asarray(pred, float) - target)),
    }
    if quantiles:
        for q, cov in quantile_calibration(quantiles, target).items():
            out[f"coverage_p{round(q * 100):d}"] = cov
    return out


def error_plots(pred: np.ndarray, target: np.ndarray, out_dir, title: str = "") -> list:
    """A scatter (prediction vs target) and an error histogram, as PNGs in `out_dir`."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred = np.asarray(pred, float)
    target = np.asarray(target, float)
    paths = []
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(target, pred, s=4, alpha=0.3)
    hi = max(target.max(), pred.max()) * 1.02
    ax.plot([0, hi], [0, hi], "k--", lw=1)
    ax.set_xlabel("target length (tokens)")
    ax.set_ylabel("predicted length (tokens)")
    ax.set_title(title or "prediction vs target")
    fig.tight_layout()
    paths.append(out_dir / "scatter.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    err = pred - target
    ax.hist(err, bins=np.arange(np.floor(err.min() / 25) * 25, err.max() + 25, 25))
    for x in (-100, -50, 50, 100):
        ax.axvline(x, color="k", ls=":", lw=1)
    ax.set_xlabel("prediction - target (tokens)")
    ax.set_ylabel("requests")
    ax.set_title(f"MAE {mae(pred, target):.1f}, Acc-50 {acc_within(pred, target, 50):.0%}, "
                 f"Acc-100 {acc_within(pred, target, 100):.0%}")
    fig.tight_layout()
    paths.append(out_dir / "error_hist.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths
