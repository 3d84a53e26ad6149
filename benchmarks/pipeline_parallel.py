"""Pipeline parallelism on a 70B model: PP = 1, 2, 4 (each stage TP GPUs), without and with
vLLM's async scheduling, against the TP-only replica of the same GPU count.

    python benchmarks/pipeline_parallel.py [--n 600] [--gpu H100-SXM] [--model llama-3.1-70b]

The workload: N synthetic Azure-conversation requests, Poisson at --rate (online: latency)
and all at t = 0 (offline: throughput), fcfs, vLLM's default batch limits, the roofline with
the GPU's kernel-measured efficiencies for every row (the built-in kernel profiles cover some
TP degrees only; one cost model keeps the rows comparable). Each row
says its GPUs, KV capacity, throughput, TTFT and TPOT and the ratio to the PP = 1 row of its
block. These are modelled times, not measured ones: see RESULTS.md for the first-principles
check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.traces.synthetic import generate  # noqa: E402


def row(label: str, res, base: dict | None) -> dict:
    r = res.records
    ttft = (r["first_token_s"] - r["arrival_s"]).to_numpy()
    e2e = (r["finish_s"] - r["arrival_s"]).to_numpy()
    out = r["generated_tokens"].to_numpy()
    tpot = ((e2e - ttft) / np.maximum(out - 1, 1))[out > 1]
    tok_s = out.sum() / (r["finish_s"].max() - r["arrival_s"].min())
    d = {"setup": label, "GPUs": res.summary["gpus"], "KV tokens": res.kv_capacity_tokens,
         "out tok/s": tok_s, "TTFT p50 ms": 1e3 * np.median(ttft),
         "TTFT mean ms": 1e3 * ttft.mean(), "TPOT mean ms": 1e3 * tpot.mean()}
    if base is not None:
        d["tok/s vs PP1"] = tok_s / base["out tok/s"]
        d["TPOT vs PP1"] = d["TPOT mean ms"] / base["TPOT mean ms"]
    return d


def block(trace, gpu: str, model: str, setups, asynchronous: bool) -> list[dict]:
    rows, base = [], None
    for tp, pp in setups:
        cfg = RunConfig(policy="fcfs", gpu=gpu, model=model, tp=tp, pp=pp, profile="roofline",
                        policy_params={"async_scheduling": asynchronous})
        d = row(f"TP{tp} x PP{pp}" + (" async" if asynchronous else ""),
                simulate(trace, cfg), base)
        base = base or d
        rows.append(d)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--gpu", default="H100-SXM")
    ap.add_argument("--model", default="llama-3.1-70b")
    ap.add_argument("--tp", type=int, default=4, help="TP of each stage in the PP sweep")
    args = ap.parse_args()
    online = generate("azure-conv", args.n, seed=0, rate=args.rate)
    offline = generate("azure-conv", args.n, seed=0, rate=0)
    sweep = [(args.tp, 1), (args.tp, 2), (args.tp, 4)]
    same = [(4, 1), (2, 2), (1, 4)]
    for name, trace in (("online", online), ("offline", offline)):
        for title, setups in ((f"PP sweep at TP{args.tp}", sweep), ("4 GPUs: TP x PP", same)):
            rows = []
            for asynchronous in (False, True):
                rows += block(trace, args.gpu, args.model, setups, asynchronous)
            print(f"\n{name} ({args.n} requests" + (f", {args.rate:g} req/s" if name == "online"
                                                     else ", all at t = 0")
                  + f"), {args.gpu} / {args.model}, {title}")
            print(tabulate(rows, headers="keys", floatfmt=".3g", tablefmt="github"))


if __name__ == "__main__":
    main()
