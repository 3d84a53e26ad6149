"""Synthetic workloads whose length distributions are derived from published data.

Every generator has the signature ``gen(n, seed=0, **params) -> Trace``; `GENERATORS` maps
names to them, `GENERATOR_INFO` gives each one's description and source, and
`generate(name, n, seed, **params)` checks the name and parameters (TraceError otherwise).

`azure-conv`, `azure-code`: the Azure LLM inference trace 2023 (Splitwise, ISCA 2024) as
capped log-normal prompt/output lengths with Poisson arrivals at the published request rate
(figures in traces/figures/azure_2023.json, re-derived by scripts/derive_azure_figures.py,
which documents the sources). `uniform`, `lognormal`: parameterised shapes for experiments.

`alpaca-vicuna`: prompt and greedy output lengths drawn from the percentiles of the shared
Alpaca/Vicuna-7B data (figures in traces/figures/alpaca_vicuna.json, re-derived by
scripts/derive_workloads.py), joined with a Gaussian copula that reproduces the measured Spearman
correlations; a `max_of_samples` column (the paper's GT) = greedy + a correlated excess.
"""

from __future__ import annotations

import difflib
import inspect
import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.traces.request import Trace, TraceError
from seqsched.traces.shared_prefix import INFO as SHARED_PREFIX_INFO, shared_prefix

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
    from scipy.special import ndtr  # here, not at the top: only this generator needs scipy

    rng = np.random.default_rng(seed)
    z = rng.multivariate_normal(np.zeros(3), cov, size=n, method="cholesky")
    u = np.clip(ndtr(z), 0.0, 1.0)  # the standard normal CDF (what scipy.stats.norm.cdf calls)
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


def _poisson_times(rng: np.random.Generator, n: int, rate: float | None) -> np.ndarray:
    if not rate:
        return np.zeros(n)
    if rate < 0:
        raise TraceError(f"rate must be >= 0 requests per second (0 = offline), got {rate}")
    return np.cumsum(rng.exponential(1.0 / rate, size=n))


def _capped_lognormal(rng: np.random.Generator, n: int, mu: float, sigma: float,
                      cap: float) -> np.ndarray:
    x = np.exp(rng.normal(mu, sigma, size=n))
    return np.maximum(np.rint(np.minimum(x, cap)), 1).astype(np.int64)


def _frame(prefix: str, prompt: np.ndarray, output: np.ndarray,
           arrival: np.ndarray) -> pd.DataFrame:
    n = len(prompt)
    return pd.DataFrame({"id": [f"{prefix}-{i}" for i in range(n)], "arrival_s": arrival,
                         "prompt_tokens": prompt, "output_tokens": output})


def _azure(kind: str, n: int, seed: int, rate: float | None) -> Trace:
    fig = load_figures("azure_2023")[kind]
    rng = np.random.default_rng(seed)
    prompt = _capped_lognormal(rng, n, fig["prompt"]["mu"], fig["prompt"]["sigma"],
                               fig["prompt"]["cap"])
    output = _capped_lognormal(rng, n, fig["output"]["mu"], fig["output"]["sigma"],
                               fig["output"]["cap"])
    arrival = _poisson_times(rng, n, fig["rate_per_s"] if rate is None else rate)
    return Trace(_frame(kind, prompt, output, arrival), name=f"{kind}-{n}-s{seed}")


def azure_conv(n: int, seed: int = 0, rate: float | None = None) -> Trace:
    """Azure 2023 conversation service: prompt median 1,020 / mean 1,155, output median 129 /
    mean 211 tokens; Poisson arrivals at the published ~5.4 req/s (rate=0: offline)."""
    return _azure("azure-conv", n, seed, rate)


def azure_code(n: int, seed: int = 0, rate: float | None = None) -> Trace:
    """Azure 2023 coding service: prompt median 1,500 / mean 2,048, output median 13 /
    mean 28 tokens; Poisson arrivals at the published ~2.4 req/s (rate=0: offline)."""
    return _azure("azure-code", n, seed, rate)


def uniform(n: int, seed: int = 0, prompt_min: int = 16, prompt_max: int = 1024,
            output_min: int = 1, output_max: int = 512, rate: float = 0.0) -> Trace:
    """Prompt and output lengths uniform on the inclusive integer ranges; offline unless
    rate > 0 (Poisson)."""
    for lo, hi, what in ((prompt_min, prompt_max, "prompt"), (output_min, output_max, "output")):
        if not (1 <= int(lo) <= int(hi)):
            raise TraceError(f"uniform: need 1 <= {what}_min <= {what}_max, got {lo}..{hi}")
    rng = np.random.default_rng(seed)
    prompt = rng.integers(int(prompt_min), int(prompt_max) + 1, size=n)
    output = rng.integers(int(output_min), int(output_max) + 1, size=n)
    return Trace(_frame("uniform", prompt, output, _poisson_times(rng, n, rate)),
                 name=f"uniform-{n}-s{seed}")


def lognormal(n: int, seed: int = 0, prompt_median: float = 512, prompt_sigma: float = 0.8,
              output_median: float = 128, output_sigma: float = 1.0,
              max_prompt_tokens: int = 8192, max_output_tokens: int = 2048,
              rate: float = 0.0) -> Trace:
    """Independent capped log-normal prompt/output lengths given by median and sigma (of the
    log); offline unless rate > 0 (Poisson)."""
    for v, what in ((prompt_median, "prompt_median"), (output_median, "output_median"),
                    (prompt_sigma, "prompt_sigma"), (output_sigma, "output_sigma"),
                    (max_prompt_tokens, "max_prompt_tokens"),
                    (max_output_tokens, "max_output_tokens")):
        if not float(v) > 0:
            raise TraceError(f"lognormal: {what} must be > 0, got {v}")
    rng = np.random.default_rng(seed)
    prompt = _capped_lognormal(rng, n, np.log(float(prompt_median)), float(prompt_sigma),
                               float(max_prompt_tokens))
    output = _capped_lognormal(rng, n, np.log(float(output_median)), float(output_sigma),
                               float(max_output_tokens))
    return Trace(_frame("lognormal", prompt, output, _poisson_times(rng, n, rate)),
                 name=f"lognormal-{n}-s{seed}")


GENERATORS = {"alpaca-vicuna": alpaca_vicuna, "azure-conv": azure_conv,
              "azure-code": azure_code, "uniform": uniform, "lognormal": lognormal,
              "shared-prefix": shared_prefix}

GENERATOR_INFO = {
    "alpaca-vicuna": {"description": "offline Alpaca prompts with Vicuna-7B response lengths "
                                     "(+ max_of_samples column)",
                      "source": "traces/figures/alpaca_vicuna.json <- "
                                "scripts/derive_workloads.py (shared Alpaca/Vicuna data)"},
    "azure-conv": {"description": "Azure 2023 conversation: capped log-normal lengths, "
                                  "Poisson arrivals at ~5.4 req/s",
                   "source": "traces/figures/azure_2023.json <- "
                             "scripts/derive_azure_figures.py (Splitwise, ISCA 2024)"},
    "azure-code": {"description": "Azure 2023 coding: capped log-normal lengths, Poisson "
                                  "arrivals at ~2.4 req/s",
                   "source": "traces/figures/azure_2023.json <- "
                             "scripts/derive_azure_figures.py (Splitwise, ISCA 2024)"},
    "uniform": {"description": "uniform lengths: prompt_min/max, output_min/max, rate",
                "source": "parameters"},
    "lognormal": {"description": "capped log-normal lengths: prompt_median/sigma, "
                                 "output_median/sigma, max_prompt_tokens, max_output_tokens, "
                                 "rate", "source": "parameters"},
    "shared-prefix": SHARED_PREFIX_INFO,
}


def generator_params(name: str) -> list[str]:
    sig = inspect.signature(GENERATORS[name])
    return [p for p in sig.parameters if p not in ("n", "seed")]


def generate(name: str, n: int, seed: int = 0, **params) -> Trace:
    """Run a named generator with checked parameters."""
    if name not in GENERATORS:
        close = difflib.get_close_matches(name, list(GENERATORS), n=1)
        raise TraceError(f"unknown synthetic workload {name!r}"
                         + (f" (did you mean {close[0]!r}?)" if close else "")
                         + f"; choose one of {', '.join(GENERATORS)}")
    if n is None or int(n) < 1:
        raise TraceError(f"the number of requests (-n) must be >= 1, got {n!r}")
    allowed = generator_params(name)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise TraceError(f"synthetic workload {name!r} has no parameter(s) "
                         f"{', '.join(unknown)}; it takes "
                         f"{', '.join(allowed) if allowed else 'none'}")
    return GENERATORS[name](int(n), seed=int(seed), **params)
