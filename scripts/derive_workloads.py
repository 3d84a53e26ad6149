"""Derive the shipped workload figures from the shared Alpaca/Vicuna data.

    python scripts/derive_workloads.py --data ../shared/data/alpaca_vicuna_lengths_train.jsonl

Writes traces/figures/alpaca_vicuna.json: percentiles (0..100) of prompt tokens, greedy output
tokens and the excess of the max over four temperatures above greedy, and the Spearman rank
correlations the synthetic generator reproduces with a Gaussian copula. Only these summary
figures are shipped, never the data (its licence is non-commercial).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--data", required=True, help="path of alpaca_vicuna_lengths_train.jsonl")
    ap.add_argument("--out", default=str(ROOT / "traces/figures/alpaca_vicuna.json"))
    args = ap.parse_args()
    prompt, greedy, excess = [], [], []
    with open(args.data, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            lengths = r["vicuna7b_output_tokens"]
            prompt.append(r["prompt_tokens"])
            greedy.append(lengths["0.0"])
            excess.append(max(lengths.values()) - lengths["0.0"])
    prompt, greedy, excess = map(np.asarray, (prompt, greedy, excess))
    q = np.arange(101)
    rho_pg = stats.spearmanr(prompt, greedy).statistic
    rho_ge = stats.spearmanr(greedy, excess).statistic
    figures = {
        "source": "Sequence Scheduling (Zheng et al. 2023) Alpaca train split, Vicuna-7B v1.1 "
                  "lengths; derived by scripts/derive_workloads.py from "
                  "alpaca_vicuna_lengths_train.jsonl (10,000 requests)",
        "n": int(len(prompt)),
        "percentiles": [int(x) for x in q],
        "prompt_tokens": np.percentile(prompt, q).round(1).tolist(),
        "output_tokens": np.percentile(greedy, q).round(1).tolist(),
        "max_excess_tokens": np.percentile(excess, q).round(1).tolist(),
        "spearman_prompt_output": round(float(rho_pg), 4),
        "spearman_output_excess": round(float(rho_ge), 4),
        "mean_prompt_tokens": round(float(prompt.mean()), 2),
        "mean_output_tokens": round(float(greedy.mean()), 2),
        "mean_max_of_samples": round(float((greedy + excess).mean()), 2),
        "max_output_tokens": int(greedy.max()),
    }
    Path(args.out).write_text(json.dumps(figures, indent=1) + "\n")
    print(f"wrote {args.out}: prompt mean {figures['mean_prompt_tokens']}, output mean "
          f"{figures['mean_output_tokens']}, max-of-samples mean {figures['mean_max_of_samples']}")


if __name__ == "__main__":
    main()
