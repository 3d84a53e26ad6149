"""Synthetic workloads whose length distributions are derived from published data.

`alpaca-vicuna`: prompt and greedy output lengths drawn from the percentiles of the shared
Alpaca/Vicuna-7B data (figures in traces/figures/alpaca_vicuna.json, re-derived by
scripts/derive_workloads.py), joined with a Gaussian copula that reproduces the measured Spearman
correlations; a `max_of_samples` column (the paper's GT) = greedy + a correlated excess.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from traces.request import Trace

FIGURES = Path(__file__).parent / "figures"


@cache
def load_figures(name: str) -> dict:
    return json.loads((FIGURES / f"{name}.json").read_text())


def _from_percentiles(u: np.ndarray, percentiles: list[float], values: list[float]) -> np.ndarray:
    """Inverse CDF by linear interpolation between the shipped percentiles."""
    return np.interp(u * 100.0, percentiles, values)


def _spearman_to_pearson(rho_s: float) -> float:
    # For a Gaussian copula, Pearson r = 2 sin(pi * rho_s / 6).
    return float(2.0 * np.sin(np.pi * rho_s / 6.0))


def alpaca_vicuna(n: int, seed: int = 0) -> Trace:
    fig = load_figures("alpaca_vicuna")
    r_po = _spearman_to_pearson(fig["spearman_prompt_output"])
    r_oe = _spearman_to_pearson(fig["spearman_output_excess"])
    cov = np.array([[1.0, r_po, 0.0], [r_po, 1.0, r_oe], [0.0, r_oe, 1.0]])
    # keep the matrix positive definite if the two correlations are large
    w, v = np.linalg.eigh(cov)
    cov = (v * np.clip(w, 1e-6, None)) @ v.T
    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(3), cov, size=n, method="cholesky")
    u = np.clip(stats.norm.cdf(z), 0.0, 1.0)
    q = fig["percentiles"]
    prompt = np.maximum(np.rint(_from_percentiles(u[:, 0], q, fig["prompt_tokens"])), 1)
    output = np.maximum(np.rint(_from_percentiles(u[:, 1], q, fig["output_tokens"])), 1)
    excess = np.maximum(np.rint(_from_percentiles(u[:, 2], q, fig["max_excess_tokens"])), 0)
    cap = fig["max_output_tokens"]
    df = pd.DataFrame({
        "id": [f"av-{i}" for i in range(n)],
        "arrival_s": np.zeros(n),
        "prompt_tokens": prompt.astype(np.int64),
        "output_tokens": output.astype(np.int64),
        "max_of_samples": np.minimum(output + excess, cap).astype(np.int64),
    })
    return Trace(df, name=f"alpaca-vicuna-{n}-s{seed}")


GENERATORS = {"alpaca-vicuna": alpaca_vicuna}
