"""How fast the engine simulates: requests and events per wall-clock second.

    python benchmarks/engine_speed.py [--scale 1.0]

Static policies on an offline Alpaca/Vicuna-like workload, continuous policies on a Poisson
workload below saturation and on overloaded chat traffic (hundreds of running rows). The baseline, run in the same process, is the same continuous
workload stepped one iteration per event (`max_iterations=1`), which is what a per-token
simulator does; the ratio shows what per-event time advance buys.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.traces.request import Trace  # noqa: E402
from seqsched.traces.synthetic import alpaca_vicuna, generate  # noqa: E402


def poisson(trace: Trace, rate: float, seed: int = 0) -> Trace:
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, len(trace))
    return trace.with_columns(arrival_s=np.cumsum(gaps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every request count")
    args = ap.parse_args()
    n_static = int(100_000 * args.scale)
    n_cont = int(5_000 * args.scale)
    offline = alpaca_vicuna(n_static, seed=1)
    online = poisson(alpaca_vicuna(n_cont, seed=2), rate=20.0)
    # overloaded chat traffic: ~240 running rows per step, a queue of waiting requests
    busy = poisson(generate("azure-conv", n_cont, seed=3), rate=60.0)
    cases = [
        ("vanilla", offline, RunConfig(policy="vanilla", predictor="none", backend="paper-a100")),
        ("binned VBS+FCR", offline, RunConfig(policy="binned", predictor="max-of-samples",
                                              backend="paper-a100")),
        ("fcfs", online, RunConfig(policy="fcfs", model="llama-7b", gpu="A100-80GB")),
        ("sjf", online, RunConfig(policy="sjf", model="llama-7b", gpu="A100-80GB")),
        ("fcfs, overloaded chat (azure-conv 60 rps, H100)", busy,
         RunConfig(policy="fcfs", model="llama-3-8b", gpu="H100-SXM")),
        ("sjf, overloaded chat", busy,
         RunConfig(policy="sjf", model="llama-3-8b", gpu="H100-SXM", predictor="noisy",
                   predictor_params={"scale": 60.0})),
        ("fcfs, 1 iteration/event (baseline)", online,
         RunConfig(policy="fcfs", policy_params={"max_iterations": 1}, model="llama-7b",
                   gpu="A100-80GB")),
    ]
    rows = []
    for label, trace, cfg in cases:
        t0 = time.perf_counter()
        r = simulate(trace, cfg)
        wall = time.perf_counter() - t0
        rows.append({"case": label, "requests": len(trace), "events": r.summary["events"],
                     "iterations": int(r.steps["iterations"].sum()), "wall_s": wall,
                     "requests/s": len(trace) / wall, "events/s": r.summary["events"] / wall,
                     "sim throughput rps": r.summary["throughput_rps"]})
    base = rows[-1]["wall_s"]
    for row in rows[2:4]:
        row["speed-up vs baseline"] = base / row["wall_s"]
    print(tabulate(rows, headers="keys", tablefmt="github", floatfmt=".3g"))


if __name__ == "__main__":
    main()
