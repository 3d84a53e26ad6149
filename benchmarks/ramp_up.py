"""A `vllm bench serve --ramp-up-strategy ...` run replayed: where latency turns as the rate
climbs, and what the replay costs on each engine.

    python benchmarks/ramp_up.py [--n 2000] [--strategy linear] [--start 1] [--end 40]
                                 [--gpu RTX-PRO-6000] [--model llama-3.1-8b] [--cap N]

The workload: N synthetic Azure-conversation requests sent as vLLM's client sends them under
the ramp-up (`traces/bench_arrivals.py`: request i's rate from the strategy, Poisson gaps at
that rate, seed 0), on the built-in kernel profile of the GPU x model, fcfs with vLLM's
defaults. Rows: the requests in five bands of their send order, with the rate vLLM's client
had reached there, their TTFT and TPOT. Then the wall time of the array engine and of the
object engine (the baseline) on the same run, one each in this process after a warm-up; their
records are asserted identical.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.traces.arrivals import vllm_bench  # noqa: E402
from seqsched.traces.bench_arrivals import RampUp  # noqa: E402
from seqsched.traces.synthetic import generate  # noqa: E402


def bands(records: pd.DataFrame, rates: np.ndarray, k: int = 5) -> list[dict]:
    """Requests in k bands of send order: the client's rate, TTFT and TPOT there."""
    r = records.sort_values("client_arrival_s" if "client_arrival_s" in records
                            else "arrival_s", kind="stable")
    ttft = (r["first_token_s"] - r["arrival_s"]).to_numpy()
    out = r["generated_tokens"].to_numpy()
    tpot = (r["finish_s"] - r["first_token_s"]).to_numpy() / np.maximum(out - 1, 1)
    rows = []
    for part in np.array_split(np.arange(len(r)), k):
        many = out[part] > 1
        rows.append({"requests": f"{part[0]}-{part[-1]}",
                     "client rate req/s": f"{rates[part[0]]:.3g}-{rates[part[-1]]:.3g}",
                     "TTFT p50 ms": 1e3 * np.median(ttft[part]),
                     "TTFT p99 ms": 1e3 * np.percentile(ttft[part], 99),
                     "TPOT mean ms": 1e3 * tpot[part][many].mean()})
    return rows


def timed(trace, cfg):
    t0 = time.perf_counter()
    res = simulate(trace, cfg)
    return res, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--strategy", default="linear", choices=("linear", "exponential"))
    ap.add_argument("--start", type=int, default=1)
    ap.add_argument("--end", type=int, default=40)
    ap.add_argument("--gpu", default="RTX-PRO-6000")
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--cap", type=int, default=None, help="--max-concurrency as well")
    args = ap.parse_args()
    ramp = RampUp(args.strategy, args.start, args.end)
    trace = vllm_bench(generate("azure-conv", args.n, 0), ramp=ramp, seed=0)
    cfg = RunConfig(policy="fcfs", gpu=args.gpu, model=args.model,
                    max_concurrency=args.cap)
    warm = vllm_bench(generate("azure-conv", 100, 1), ramp=ramp, seed=1)
    for engine in ("fast", "baseline"):
        timed(warm, RunConfig(policy="fcfs", gpu=args.gpu, model=args.model, engine=engine))
    fast, fast_wall = timed(trace, dataclasses.replace(cfg, engine="fast"))
    obj, obj_wall = timed(trace, dataclasses.replace(cfg, engine="baseline"))
    pd.testing.assert_frame_equal(fast.records, obj.records, check_exact=True)
    cap = "" if args.cap is None else f", max_concurrency {args.cap}"
    print(f"{args.n} azure-conv requests, {args.strategy} ramp-up {args.start} -> {args.end} "
          f"req/s (Poisson gaps, seed 0), sent over {trace.arrival_s[-1]:.1f} s, on "
          f"{args.gpu} / {args.model}, fcfs{cap}")
    print(tabulate(pd.DataFrame(bands(fast.records, ramp.rates(args.n))), headers="keys",
                   tablefmt="github", showindex=False, floatfmt=".4g"))
    print(f"\nwall: array engine {fast_wall:.3g} s, object engine {obj_wall:.3g} s "
          f"({obj_wall / fast_wall:.3g}x); records identical (asserted)")


if __name__ == "__main__":
    main()
