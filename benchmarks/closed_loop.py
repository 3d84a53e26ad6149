"""vLLM bench's --max-concurrency replayed closed-loop (sim/client.py) against the open-loop
replay seqsched did before: what a `vllm bench serve --request-rate inf --max-concurrency N`
run looks like to each, and what the cap costs in simulation speed.

    python benchmarks/closed_loop.py [--n 2000] [--gpu RTX-PRO-6000] [--model llama-3.1-8b]
                                     [--profile roofline] [--caps 512,64,16]

The workload: N synthetic Azure-conversation requests all generated at t = 0 (an infinite
request rate, as such a benchmark is usually run), on the built-in kernel profile of the GPU x
model (`--profile roofline`: the roofline instead, where the engine's own work, not the cost
model's, is most of the wall). Open loop sends every request at t = 0 (TTFT counts the whole
queue); closed loop holds all but N back on the client and TTFT counts from each send, as
vLLM bench times it. Rows: open loop, then each cap, on the array engine and the object
engine (the speed baseline; the two engines' records and step logs are asserted identical).
Wall times are one run each in this process, after a warm-up run of each engine;
`object / array` is the object engine's wall over the array engine's on the same row.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.traces.synthetic import generate  # noqa: E402


def in_flight(rec: pd.DataFrame) -> int:
    """Most requests sent and unfinished at once (checked at every send)."""
    sent = np.sort(rec["arrival_s"].to_numpy())
    done = np.sort(rec["finish_s"].to_numpy())
    return int((np.arange(1, len(sent) + 1) - np.searchsorted(done, sent, side="right")).max())


def row(label: str, engine: str, res, wall: float, base_wall: float,
        obj_wall: float) -> dict:
    r = res.records
    ttft = (r["first_token_s"] - r["arrival_s"]).to_numpy()
    e2e = (r["finish_s"] - r["arrival_s"]).to_numpy()
    out = r["generated_tokens"].to_numpy()
    tpot = ((e2e - ttft) / np.maximum(out - 1, 1))[out > 1]
    return {"max_concurrency": label, "engine": engine,
            "TTFT mean ms": 1e3 * ttft.mean(), "TTFT p99 ms": 1e3 * np.percentile(ttft, 99),
            "TPOT mean ms": 1e3 * tpot.mean(), "e2e mean s": e2e.mean(),
            "req/s": len(r) / r["finish_s"].max(), "max in flight": in_flight(r),
            "wall s": wall, "wall / object open": wall / base_wall,
            "object / array": obj_wall / wall}


def timed(trace, **kw):
    t0 = time.perf_counter()
    res = simulate(trace, RunConfig(**kw))
    return res, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--gpu", default="RTX-PRO-6000")
    ap.add_argument("--model", default="llama-3.1-8b")
    ap.add_argument("--caps", default="512,64,16")
    ap.add_argument("--profile", default=None, help="a profile name, or roofline for none "
                    "(default: the built-in kernel profile of --gpu x --model)")
    args = ap.parse_args()
    trace = generate("azure-conv", args.n, 0)
    trace = trace.with_columns(arrival_s=np.zeros(len(trace)))          # request rate inf
    base = {"policy": "fcfs", "gpu": args.gpu, "model": args.model, "profile": args.profile}
    caps = [None, len(trace), *(int(c) for c in args.caps.split(","))]
    warm = generate("azure-conv", 100, 1).with_columns(arrival_s=np.zeros(100))
    for engine in ("baseline", "fast"):   # imports and first calls out of the timed runs
        timed(warm, **base, engine=engine, max_concurrency=8)
    rows, base_wall, open_records = [], None, None
    for cap in caps:
        kw = dict(base) if cap is None else {**base, "max_concurrency": cap}
        obj, obj_wall = timed(trace, **kw, engine="baseline")
        fast, fast_wall = timed(trace, **kw, engine="fast")
        pd.testing.assert_frame_equal(fast.records, obj.records, check_exact=True)
        pd.testing.assert_frame_equal(fast.steps, obj.steps, check_exact=True)
        if cap is None:
            base_wall, open_records = obj_wall, obj.records
        else:
            assert in_flight(obj.records) <= cap
        if cap == len(trace):       # a cap that never binds: the open-loop run
            pd.testing.assert_frame_equal(obj.records.drop(columns="client_arrival_s"),
                                          open_records)
        label = ("none (open loop)" if cap is None
                 else f"{cap} (= n)" if cap == len(trace) else str(cap))
        rows.append(row(label, "array", fast, fast_wall, base_wall, obj_wall))
        rows.append(row(label, "object", obj, obj_wall, base_wall, obj_wall))
    print(f"{args.n} azure-conv requests at t = 0 on {args.gpu} / {args.model} "
          f"({args.profile or 'built-in profile'}), fcfs, KV "
          f"{fast.kv_capacity_tokens} tokens")
    print(tabulate(pd.DataFrame(rows), headers="keys", tablefmt="github", showindex=False,
                   floatfmt=".4g"))
    print("\nBoth engines' records and step logs are identical on every row; max_concurrency = n "
          "reproduces the open-loop records exactly (asserted).")


if __name__ == "__main__":
    main()
