"""How close the simulation is to a real vLLM run, per cost model: the shared RTX PRO 6000 run
(../shared/data/serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19/, vLLM 0.19.0, Llama-3.1-8B,
300 ShareGPT requests at ~10 req/s) replayed with the run's own scheduler settings
(max_num_seqs 128, max_num_batched_tokens 2048, chunked prefill) through `seqsched simulate`'s
fcfs policy, once on the roofline (datasheet peaks x the kernel-measured efficiencies of
backends/efficiency.py) and once on the built-in kernel profile.
NOTHING is fitted to this run: the profile is the LLMServingSim kernel bundle as imported.

    .venv/bin/python benchmarks/kernel_profile_accuracy.py [--run DIR]

Measured metrics as the run's README defines them: TTFT = first_token - queued, end-to-end =
last_token - queued, TPOT = (last - first) / (output - 1); simulated: seqsched's records.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.app.run import RunConfig, describe_backend, simulate
from seqsched.traces.request import Trace

RUN = "serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19"


def load_run(folder: Path) -> tuple[Trace, pd.DataFrame]:
    work = pd.read_json(folder / "workload.jsonl", lines=True)
    meas = pd.read_json(folder / "requests.jsonl", lines=True)
    trace = Trace(pd.DataFrame({"id": [f"r{i}" for i in range(len(work))],
                                "arrival_s": work["arrival_time_ns"] / 1e9,
                                "prompt_tokens": work["input_toks"],
                                "output_tokens": work["output_toks"]}), name="rtxpro6000-run")
    m = pd.DataFrame({"ttft": meas["first_token_ts"] - meas["queued_ts"],
                      "e2e": meas["last_token_ts"] - meas["queued_ts"],
                      "tpot": (meas["last_token_ts"] - meas["first_token_ts"])
                      / (meas["output_toks"] - 1).where(meas["output_toks"] > 1)})
    return trace, m


def simulated(records: pd.DataFrame) -> pd.DataFrame:
    gen = records["generated_tokens"].astype(float)
    return pd.DataFrame({
        "ttft": records["first_token_s"] - records["arrival_s"],
        "e2e": records["finish_s"] - records["arrival_s"],
        "tpot": (records["finish_s"] - records["first_token_s"]) / (gen - 1).where(gen > 1)})


def errors(sim: pd.DataFrame, meas: pd.DataFrame) -> dict:
    out = {}
    for metric in ("ttft", "tpot", "e2e"):
        for stat, f in (("mean", np.nanmean), ("p50", np.nanmedian),
                        ("p90", lambda a: np.nanquantile(a, 0.9)),
                        ("p99", lambda a: np.nanquantile(a, 0.99))):
            s, m = f(sim[metric].to_numpy(float)), f(meas[metric].to_numpy(float))
            out[f"{metric} {stat}"] = (s, m, 100.0 * (s - m) / m)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("SEQSCHED_DATA", "/work/shared/data")
    ap.add_argument("--run", default=str(Path(data) / RUN))
    args = ap.parse_args()
    trace, meas = load_run(Path(args.run))
    params = {"max_num_seqs": 128, "max_batched_tokens": 2048, "chunked_prefill": True}
    base = dict(policy="fcfs", policy_params=params, gpu="RTX-PRO-6000", model="llama-3.1-8b",
                memory_fraction=0.9, block_size=16)
    configs = {"roofline": RunConfig(profile="roofline", **base),
               "kernel profile": RunConfig(**base)}
    rows = {}
    for label, cfg in configs.items():
        t0 = time.perf_counter()
        res = simulate(trace, cfg)
        print(f"{label}: {describe_backend(cfg)} ({time.perf_counter() - t0:.1f} s)")
        rows[label] = errors(simulated(res.records), meas)
    keys = list(next(iter(rows.values())))
    table = pd.DataFrame({"measured": [rows[next(iter(rows))][k][1] for k in keys]}, index=keys)
    for label, r in rows.items():
        table[f"{label} sim"] = [r[k][0] for k in keys]
        table[f"{label} err %"] = [r[k][2] for k in keys]
    print(table.round(4).to_string())
    print(json.dumps({k: round(v[2], 1) for k, v in rows["kernel profile"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
