"""Multi-iteration steps against the per-iteration reference, under KV pressure.

    python benchmarks/readmission_reference.py [--traces 60] [--requests 3000]

vLLM plans every iteration; a seqsched step runs k iterations in one event. With
`max_iterations=1` every step is one iteration, i.e. the per-iteration scheduler by
construction: the reference. Two cases where memory runs out and requests are preempted:

1. `--traces` random small traces (15 requests, KV a little above the longest request), fcfs,
   block 4, chunked prefill, budget 64, the toy cost model of tests/core/coretoy.py (exact in
   binary floating point): how many k-iteration runs differ from the reference, and whether
   the two engines agree (records and step logs) at each k.
2. srpt on `--requests` synthetic azure-conv requests at 38 req/s, H100-SXM llama-3-8b
   roofline, memory_fraction 0.4: preemptions, events and means at k = 4096 and 1, and the
   largest time difference between them (float sums of k iterations at once vs one by one).
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
from seqsched.traces.synthetic import generate  # noqa: E402
from tests.core.coretoy import FixedPredictor, small_kv_config, toy_executor, trace  # noqa: E402

H100 = {"model": "llama-3-8b", "gpu": "H100-SXM", "backend": "roofline"}
TIMES = ["first_scheduled_s", "first_token_s", "finish_s"]


def toy_traces(n_traces: int) -> dict:
    rng = np.random.default_rng(1)
    differ = engines_differ = preemptions = 0
    for _ in range(n_traces):
        n = 15
        rows = [(f"r{i}", float(q) / 4, int(p), int(o)) for i, (q, p, o) in enumerate(zip(
            np.sort(rng.integers(0, 40, n)), rng.integers(1, 80, n), rng.integers(1, 60, n)))]
        cap = max(p + o for _, _, p, o in rows) + 16 + int(rng.integers(0, 200))
        out = {}
        for engine in ("baseline", "fast"):
            for k in (1, 4096):
                cfg = small_kv_config(cap, engine=engine, policy="fcfs", block_size=4,
                                      policy_params={"max_iterations": k, "chunked_prefill": True,
                                                     "max_batched_tokens": 64})
                out[engine, k] = simulate(trace(rows), cfg, executor=toy_executor(),
                                          predictor=FixedPredictor([r[3] for r in rows]))
        differ += not out["baseline", 1].records.equals(out["baseline", 4096].records)
        engines_differ += any(not (out["baseline", k].records.equals(out["fast", k].records)
                                   and out["baseline", k].steps.equals(out["fast", k].steps))
                              for k in (1, 4096))
        preemptions += out["baseline", 1].summary["preemptions"]
    return {"traces": n_traces, "k=4096 differs from k=1": differ,
            "engines differ": engines_differ, "preemptions (k=1, all traces)": preemptions}


def srpt_case(n: int) -> list[dict]:
    busy = generate("azure-conv", n, seed=3, rate=38.0)
    rows, runs = [], {}
    for k in (4096, 1):
        t0 = time.perf_counter()
        r = simulate(busy, RunConfig(policy="srpt", memory_fraction=0.4, engine="fast",
                                     policy_params={"max_iterations": k}, **H100))
        runs[k] = r
        rec = r.records
        rows.append({"max_iterations": k, "preemptions": r.summary["preemptions"],
                     "events": r.summary["events"],
                     "TTFT mean s": (rec.first_token_s - rec.arrival_s).mean(),
                     "e2e mean s": (rec.finish_s - rec.arrival_s).mean(),
                     "wall s": time.perf_counter() - t0})
    a, b = runs[4096].records, runs[1].records
    rows[0]["max |time - reference| s"] = max((a[c] - b[c]).abs().max() for c in TIMES)
    rows[0]["same decisions"] = all(a[c].equals(b[c]) for c in
                                    ("preemptions", "attempts", "recomputed_tokens"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=60)
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    print("1. toy traces, fcfs, block 4, chunked, budget 64 (tight KV)")
    print(tabulate([toy_traces(args.traces)], headers="keys", tablefmt="github"))
    print(f"\n2. srpt, azure-conv {args.requests} requests at 38 req/s, H100 llama-3-8b roofline, "
          "memory_fraction 0.4 (array engine)")
    print(tabulate(srpt_case(args.requests), headers="keys", tablefmt="github", floatfmt=".6g"))


if __name__ == "__main__":
    main()
