"""How fast the engine simulates: requests, events and iterations per wall-clock second.

    python benchmarks/engine_speed.py [--scale 1.0] [--skip-static] [--skip-online]

1. Static policies on 100,000 offline Alpaca/Vicuna-like requests (a batch is one event).
2. Continuous policies on Poisson workloads, array engine (`--engine fast`, the default for
   them) against the object engine (`--engine baseline`) on the same trace in the same
   process, with a check that both give identical records and step logs.
3. Online at scale, each case in a fresh process (peak memory, whole-process wall):
   1,000,000 synthetic Azure-conversation requests on H100/llama-3-8b (fcfs and sjf; records
   CSV and step log Parquet written), and the Vidur comparison - 100,000 Splitwise
   conversation requests, Poisson 5 req/s, A100/llama-2-7b - timed as a whole `seqsched
   simulate` process. The object engine runs the same shape at a smaller n (its time per
   request is flat in n); the ratio is of requests per second.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqsched.analysis.report import write_run  # noqa: E402
from seqsched.app.run import RunConfig, execute, prepare, simulate  # noqa: E402
from seqsched.traces.request import Trace  # noqa: E402
from seqsched.traces.synthetic import alpaca_vicuna, generate  # noqa: E402

# the roofline cost model (the built-in kernel profiles, the default on A100-80GB and H100,
# spend ~1-2 ms per step interpolating and would measure the cost model, not the engine)
H100 = {"model": "llama-3-8b", "gpu": "H100-SXM", "backend": "roofline"}
AZURE_RATE = 38.0          # req/s: ~200-250 running rows on H100/llama-3-8b, queue bounded


def poisson(trace: Trace, rate: float, seed: int = 0) -> Trace:
    gaps = np.random.default_rng(seed).exponential(1.0 / rate, len(trace))
    return trace.with_columns(arrival_s=np.cumsum(gaps))


def timed(trace: Trace, cfg: RunConfig) -> dict:
    t0 = time.perf_counter()
    r = simulate(trace, cfg)
    wall = time.perf_counter() - t0
    events, iters = r.summary["events"], int(r.steps["iterations"].sum())
    return {"requests": len(trace), "events": events, "iterations": iters, "wall_s": wall,
            "requests/s": len(trace) / wall, "events/s": events / wall,
            "iterations/s": iters / wall, "mean rows": float(r.steps["rows"].mean()),
            "_result": r}


def static_cases(scale: float) -> list[dict]:
    offline = alpaca_vicuna(int(100_000 * scale), seed=1)
    rows = []
    for label, cfg in (("vanilla", RunConfig(policy="vanilla", predictor="none",
                                            backend="paper-a100")),
                       ("binned VBS+FCR", RunConfig(policy="binned", predictor="max-of-samples",
                                                    backend="paper-a100"))):
        row = timed(offline, cfg)
        row.pop("_result")
        rows.append({"case": label, **row})
    return rows


def online_cases(scale: float) -> list[dict]:
    """Array vs object engine on the same trace; the records and step log must be identical."""
    n = int(5_000 * scale)
    online = poisson(alpaca_vicuna(n, seed=2), rate=20.0)
    busy = generate("azure-conv", n, seed=3, rate=AZURE_RATE)
    a100 = {"backend": "roofline", "gpu": "A100-80GB", "model": "llama-7b"}
    cases = [("fcfs, alpaca 20 rps, A100", online, RunConfig(policy="fcfs", **a100)),
             ("sjf, alpaca 20 rps, A100", online, RunConfig(policy="sjf", **a100)),
             (f"fcfs, azure-conv {AZURE_RATE:g} rps, H100", busy, RunConfig(policy="fcfs", **H100)),
             ("sjf (noisy), azure-conv, H100", busy,
              RunConfig(policy="sjf", predictor="noisy", predictor_params={"scale": 60.0},
                        **H100)),
             ("srpt, azure-conv, H100, small KV (preempts)", busy,
              RunConfig(policy="srpt", memory_fraction=0.4, **H100)),
             ("fcfs, vLLM async scheduling, azure-conv, H100", busy,
              RunConfig(policy="fcfs", policy_params={"async_scheduling": True}, **H100))]
    rows = []
    for label, trace, cfg in cases:
        base = timed(trace, dataclasses.replace(cfg, engine="baseline"))
        fast = timed(trace, dataclasses.replace(cfg, engine="fast"))
        a, b = base.pop("_result"), fast.pop("_result")
        same = a.records.equals(b.records) and a.steps.equals(b.steps)
        rows.append({"case": label, "engine": "baseline", **base})
        rows.append({"case": label, "engine": "fast", **fast,
                     "speed-up": base["wall_s"] / fast["wall_s"], "identical": same,
                     "preemptions": b.summary["preemptions"]})
    return rows


def one_case(args) -> None:
    """Child process: simulate one large online case, write its outputs, print JSON."""
    trace = generate("azure-conv", args.n, seed=4, rate=args.rate)
    cfg = RunConfig(policy=args.policy, engine=args.engine, **H100,
                    policy_params={"async_scheduling": True} if args.async_scheduling else {})
    run = prepare(trace, cfg)
    simulate_only, cpu = run.engine.run, {}

    def timed_run() -> None:                       # CPU seconds of the simulation alone
        c0 = time.process_time()
        simulate_only()
        cpu["sim"] = time.process_time() - c0

    run.engine.run = timed_run
    t0 = time.perf_counter()
    result = execute(run)                          # the simulation, records, step log, summary
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        write_run(Path(d), args.policy, result)    # records CSV, steps Parquet, summary JSON
    out = time.perf_counter() - t1
    sim, records, steps = result.wall_s, result.records, result.steps
    waiting = (records["first_scheduled_s"] - records["arrival_s"]).to_numpy()
    print(json.dumps({"requests": args.n, "events": len(steps),
                      "iterations": int(steps["iterations"].sum()), "sim_s": sim, "sim_cpu_s": cpu["sim"],
                      "records_s": out, "summary_s": t1 - t0 - sim,
                      "mean rows": float(steps["rows"].mean()),
                      "queue p99 s": float(np.quantile(waiting, 0.99)),
                      "peak_MiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def child(*argv: str) -> tuple[dict, float]:
    """Run this script with `argv` in a fresh process: (its JSON line, its CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, __file__, *argv], check=True, capture_output=True,
                         text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return json.loads(out.strip().splitlines()[-1]), cpu


def scale_cases(scale: float) -> list[dict]:
    rows = []
    n_fast, n_base = int(1_000_000 * scale), max(int(20_000 * scale), 2000)
    for policy, lag in (("fcfs", False), ("sjf", False), ("fcfs", True)):
        runs = {}
        for engine, n in (("fast", n_fast), ("baseline", n_base)):
            r, cpu = child("--one", "--n", str(n), "--policy", policy, "--engine", engine,
                           "--rate", str(AZURE_RATE), *(["--async-scheduling"] if lag else []))
            runs[engine] = {
                "case": f"{policy}{' (async scheduling)' if lag else ''}, azure-conv "
                        f"{AZURE_RATE:g} rps, H100 llama-3-8b",
                "engine": engine, "requests": n, "events": r["events"],
                "iterations": r["iterations"], "mean rows": r["mean rows"],
                "sim wall s": r["sim_s"], "sim CPU s": r["sim_cpu_s"], "process CPU s": cpu,
                "records+steps written s": r["records_s"], "peak MiB": r["peak_MiB"],
                "requests/s": n / r["sim_s"], "events/s": r["events"] / r["sim_s"],
                "iterations/s": r["iterations"] / r["sim_s"]}
        runs["fast"]["speed-up"] = runs["fast"]["requests/s"] / runs["baseline"]["requests/s"]
        rows += [runs["baseline"], runs["fast"]]
    # the Vidur comparison, whole `seqsched simulate` process: Poisson 5 req/s, A100 llama-2-7b
    runs = {}
    for engine, n in (("baseline", max(int(10_000 * scale), 1000)),
                      ("fast", int(100_000 * scale))):
        cmd = [sys.executable, "-m", "seqsched.app.cli", "simulate", "synth:azure-conv", "-n",
               str(n), "--rate", "5", "--policy", "fcfs", "--gpu", "A100-80GB", "--model",
               "llama-2-7b", "--backend", "roofline", "--no-progress", "--engine", engine]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        runs[engine] = {"case": "Vidur shape: fcfs, azure-conv 5 rps, A100 llama-2-7b, whole "
                                "process", "engine": engine, "requests": n,
                        "process wall s": wall, "process CPU s": cpu, "requests/s": n / wall}
    runs["fast"]["speed-up"] = runs["fast"]["requests/s"] / runs["baseline"]["requests/s"]
    return rows + [runs["baseline"], runs["fast"]]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every request count")
    ap.add_argument("--skip-static", action="store_true")
    ap.add_argument("--skip-online", action="store_true")
    ap.add_argument("--skip-scale", action="store_true")
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--policy", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--async-scheduling", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return one_case(args)
    fmt = {"tablefmt": "github", "floatfmt": ".3g", "headers": "keys"}
    if not args.skip_static:
        print(tabulate(static_cases(args.scale), **fmt), "\n")
    if not args.skip_online:
        print(tabulate(online_cases(args.scale), **fmt), "\n")
    if not args.skip_scale:
        table = pd.DataFrame(scale_cases(args.scale)).astype(object)
        print(tabulate(table.where(table.notna(), ""), showindex=False, **fmt))


if __name__ == "__main__":
    main()
