"""How much the kernel profiles' float lookups (backends/kernel_tables.py) speed up a
simulation, against their numpy reference path in the same process, and that both give the
same records and step log.

    python benchmarks/kernel_profile_speed.py [--n 2000] [--repeats 3] [--engines fast,baseline]

Each case is one `simulate` of synthetic Azure-conversation requests (Poisson 30 req/s) on a
built-in kernel profile; the reference (`kernel_tables.FAST = False`: numpy on every lookup)
and the float path alternate, `--repeats` times each, and the table shows median wall
seconds, the ratio, and the load average (the machine is shared).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.backends import kernel_tables  # noqa: E402
from seqsched.traces.synthetic import generate  # noqa: E402

CASES = [  # label, RunConfig fields
    ("LLMServingSim bundle (grid4 + skew), RTX PRO 6000 / llama-3.1-8b",
     {"gpu": "RTX-PRO-6000", "model": "llama-3.1-8b"}),
    ("aiconfigurator (split grids), RTX PRO 6000 / llama-3.1-8b",
     {"gpu": "RTX-PRO-6000", "model": "llama-3.1-8b",
      "profile": "rtxpro6000-llama-3.1-8b-tp1-aic"}),
    ("Vidur (split grids, TP all-reduce), H100 / llama-2-70b TP4",
     {"gpu": "H100-SXM", "model": "llama-2-70b", "tp": 4}),
    ("LLMServingSim bundle + MoE, RTX PRO 6000 / qwen3-30b-a3b",
     {"gpu": "RTX-PRO-6000", "model": "qwen3-30b-a3b"}),
]


def timed(trace, cfg: RunConfig, fast: bool):
    kernel_tables.FAST = fast
    try:
        t0 = time.perf_counter()
        result = simulate(trace, cfg)
        return time.perf_counter() - t0, result
    finally:
        kernel_tables.FAST = True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="fast,baseline")
    args = ap.parse_args()
    trace = generate("azure-conv", args.n, seed=3, rate=30.0)
    rows = []
    for engine in args.engines.split(","):
        for label, fields in CASES:
            cfg = RunConfig(policy="fcfs", engine=engine, **fields)
            walls = {False: [], True: []}
            results = {}
            load = os.getloadavg()[0]
            for _ in range(args.repeats):
                for fast in (False, True):
                    wall, results[fast] = timed(trace, cfg, fast)
                    walls[fast].append(wall)
            a, b = results[False], results[True]
            same = a.records.equals(b.records) and a.steps.equals(b.steps)
            before, after = statistics.median(walls[False]), statistics.median(walls[True])
            rows.append({"case": label, "engine": engine, "steps": len(b.steps),
                         "numpy s": round(before, 2), "float s": round(after, 2),
                         "speed-up": round(before / after, 2), "identical": same,
                         "load 1m": round((load + os.getloadavg()[0]) / 2, 1)})
            print(tabulate([rows[-1]], headers="keys"), flush=True)
    print()
    print(tabulate(rows, headers="keys", tablefmt="github"))
    print(f"\n{args.n} azure-conv requests, Poisson 30 req/s, fcfs; medians of {args.repeats} "
          f"alternating runs; {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
