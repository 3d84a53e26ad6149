"""Derive the `azure-conv` / `azure-code` synthetic workload parameters.

    python scripts/derive_azure_figures.py                       # from the published statistics
    python scripts/derive_azure_figures.py --conv AzureLLMInferenceTrace_conv.csv \
                                           --code AzureLLMInferenceTrace_code.csv

Writes traces/figures/azure_2023.json. Each length (prompt = ContextTokens, output =
GeneratedTokens) is modelled as a log-normal capped at a maximum, min(X, cap) with
X ~ LogNormal(mu, sigma): mu = ln(median) (the cap does not move the median) and sigma is
solved so the capped mean equals the published mean:

    E[min(X, c)] = exp(mu + sigma^2/2) Phi((ln c - mu - sigma^2)/sigma)
                   + c (1 - Phi((ln c - mu)/sigma)).

Sources (Azure LLM inference trace 2023, collected 2023-11-11, one hour per service):
  * Azure/AzurePublicDataset, AzureLLMInferenceDataset2023.md (schema TIMESTAMP,
    ContextTokens, GeneratedTokens; CC-BY) -- https://github.com/Azure/AzurePublicDataset
  * P. Patel et al., "Splitwise: Efficient generative LLM inference using phase splitting",
    ISCA 2024, Sec. III (Fig. 3 token distributions): coding median prompt ~1500 tokens and
    output 13; conversation median prompt ~1020 and output 129.
  * Request counts and means as given in seqsched issue #3 (from the released CSVs):
    conversation ~19.4k requests in 1 h, input mean 1,155, output mean 211 (median 129);
    code ~8.8k requests in 1 h, input mean 2,048, output mean 28 (median 13).
The prompt medians are read from the Splitwise paper's text/figure, not from the CSVs; run
the script with --conv/--code on the released CSVs to replace every figure by the empirical
one (medians, means, counts, duration and maxima measured from the files).

The caps (prompt 8,192 for conversation, 16,384 for code; output 4,096) are modelling choices,
not published figures; the solved sigma accounts for them so the means still match.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import optimize, stats

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PUBLISHED = {
    "azure-conv": {"requests": 19_400, "duration_s": 3600.0,
                   "prompt": {"median": 1020, "mean": 1155, "cap": 8192},
                   "output": {"median": 129, "mean": 211, "cap": 4096}},
    "azure-code": {"requests": 8_800, "duration_s": 3600.0,
                   "prompt": {"median": 1500, "mean": 2048, "cap": 16384},
                   "output": {"median": 13, "mean": 28, "cap": 4096}},
}


def capped_lognormal_mean(mu: float, sigma: float, cap: float) -> float:
    lc = np.log(cap)
    body = np.exp(mu + sigma**2 / 2) * stats.norm.cdf((lc - mu - sigma**2) / sigma)
    return float(body + cap * stats.norm.sf((lc - mu) / sigma))


def fit(median: float, mean: float, cap: float) -> dict:
    mu = float(np.log(median))
    if mean <= median:
        raise SystemExit(f"mean {mean} <= median {median}: not a right-skewed log-normal")
    f = lambda s: capped_lognormal_mean(mu, s, cap) - mean  # noqa: E731
    hi = 0.05
    while f(hi) < 0 and hi < 10:
        hi *= 1.5
    if f(hi) < 0:
        raise SystemExit(f"no sigma reaches mean {mean} under cap {cap}; raise the cap")
    sigma = float(optimize.brentq(f, 1e-6, hi))
    return {"mu": round(mu, 6), "sigma": round(sigma, 6), "cap": int(cap),
            "median": median, "mean": mean}


def empirical(path: str) -> dict:
    from seqsched.traces.io import load_trace
    t = load_trace(path, "azure")
    p, o, a = t.prompt_tokens, t.output_tokens, t.arrival_s
    return {"requests": len(t), "duration_s": float(a[-1] - a[0]),
            "prompt": {"median": float(np.median(p)), "mean": float(p.mean()),
                       "cap": int(p.max())},
            "output": {"median": float(np.median(o)), "mean": float(o.mean()),
                       "cap": int(o.max())}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conv", help="AzureLLMInferenceTrace_conv.csv (optional, empirical fit)")
    ap.add_argument("--code", help="AzureLLMInferenceTrace_code.csv (optional, empirical fit)")
    ap.add_argument("--out", default=str(ROOT / "traces/figures/azure_2023.json"))
    args = ap.parse_args()
    stats_by = dict(PUBLISHED)
    origin = {k: "published statistics (see source)" for k in stats_by}
    for name, path in (("azure-conv", args.conv), ("azure-code", args.code)):
        if path:
            stats_by[name] = empirical(path)
            origin[name] = f"measured from {Path(path).name}"
    figures = {"source": "Azure LLM inference trace 2023 (Patel et al., Splitwise, ISCA 2024; "
                         "Azure/AzurePublicDataset AzureLLMInferenceDataset2023.md); derived "
                         "by scripts/derive_azure_figures.py",
               "model": "length = max(1, round(min(LogNormal(mu, sigma), cap))); arrivals "
                        "Poisson at requests/duration_s"}
    for name, s in stats_by.items():
        entry = {"origin": origin[name], "requests": s["requests"],
                 "duration_s": s["duration_s"],
                 "rate_per_s": round(s["requests"] / s["duration_s"], 4)}
        for part in ("prompt", "output"):
            entry[part] = fit(s[part]["median"], s[part]["mean"], s[part]["cap"])
        figures[name] = entry
        print(f"{name}: rate {entry['rate_per_s']}/s; prompt mu={entry['prompt']['mu']:.3f} "
              f"sigma={entry['prompt']['sigma']:.3f}; output mu={entry['output']['mu']:.3f} "
              f"sigma={entry['output']['sigma']:.3f}")
    Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
