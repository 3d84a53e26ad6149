"""Sim-vs-live validation benchmark: how far the fitted profile's simulated timeline is from a
real model's measured one, for the paper's policies on the shared Alpaca/Vicuna data.

    # CPU, tiny random LLaMA (minutes), fresh calibration right before the runs:
    python benchmarks/live_validation.py --model tiny --device cpu --threads 1 --requests 256

    # GPU, LLaMA-7B shape in fp16 with random weights (HF eager, the paper's stack):
    python benchmarks/live_validation.py --model llama-7b --device cuda --dtype float16 \
        --gpu H100-SXM --requests 256 \
        --calibrate-out backends/profiles/llama-7b-h100-float16.json

For every policy it runs `backends.live_cli.run_validate` (the same trace, policy, predictor and
seed through `sim.run.simulate`, once with the profile's cost model and once with the
LiveExecutor), prints the table, and writes each run's files plus a combined summary.md/json
under --out. Policies: `vanilla` (batch 16, cap 512) and `binned` (VBS + FCR, bins of 50, the
paper's batch-size table) with a noisy predictor standing for the paper's LoRA predictor
(max-of-samples base + Laplace noise of the paper's 62-token MAE) whose length query (prompt +
30 tokens, 8 answer tokens, batches of 128) is charged on the timeline and, live, run and timed
on the served model; `fcfs` (continuous) on request.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = Path("/work/shared/data/alpaca_vicuna_lengths_train.jsonl")

POLICIES = {
    "vanilla": dict(policy="vanilla", policy_params={"batch_size": 16}, predictor="oracle",
                    predictor_params={}),
    # the length query's cost is on both timelines: each request's prompt + 30 query tokens
    # prefilled and 8 answer tokens decoded, batches of 128 (the paper's LoRA query), run live
    # on the served model in the live run
    "binned": dict(policy="binned", policy_params={"vbs": True, "fcr": True},
                   predictor="noisy",
                   predictor_params={"base": "max-of-samples", "scale": 62.0, "seed": 0,
                                     "query_tokens": 30, "answer_tokens": 8,
                                     "batch_size": 128}),
    "fcfs": dict(policy="fcfs", policy_params={}, predictor="oracle", predictor_params={}),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--trace", default=str(DATA))
    ap.add_argument("--requests", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--policies", default="vanilla,binned")
    ap.add_argument("--profile", default=None, help="use this profile (skip calibration)")
    ap.add_argument("--calibrate-out", default=None,
                    help="calibrate first and write the profile here")
    ap.add_argument("--grid", default=None, help="calibration grid (default by device)")
    ap.add_argument("--gpu", default="A100-80GB", help="GPU spec for KV accounting")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clock", default="wall", choices=["wall", "thread"],
                    help="thread: single-threaded CPU time (a shared CPU sandbox)")
    ap.add_argument("--out", default=None, help="output folder (default benchmarks/out/...)")
    args = ap.parse_args(argv)
    names = [p.strip() for p in args.policies.split(",") if p.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        ap.error(f"unknown policies {', '.join(unknown)}; choose from {', '.join(POLICIES)}")

    import torch

    from seqsched.backends.live.executor import LiveExecutor
    from seqsched.app.calibrate_cli import profile_table
    from seqsched.app.validate_cli import load_trace_any, markdown_table, run_validate
    from seqsched.backends.profile import read_profile, save_profile
    from seqsched.traces.request import Trace

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = args.dtype or ("float16" if args.device.startswith("cuda") else "float32")
    out = Path(args.out or ROOT / "benchmarks" / "out" / f"live_validation_{args.model}_"
               f"{args.device.split(':')[0]}")
    out.mkdir(parents=True, exist_ok=True)
    ex = LiveExecutor(args.model, device=args.device, dtype=dtype,
                      attn_implementation=args.attn, seed=args.seed, clock=args.clock)
    if args.profile is None:
        from seqsched.backends.calibration import GRIDS, calibrate
        grid = args.grid or ("gpu" if args.device.startswith("cuda") else "cpu")
        t0 = time.perf_counter()
        prof = calibrate(ex, GRIDS[grid], progress=sys.stderr.isatty())
        prof["settings"]["grid"] = grid
        path = Path(args.calibrate_out or out / "profile.json")
        save_profile(prof, path)
        print(f"calibrated in {time.perf_counter() - t0:.0f} s -> {path}")
        print(profile_table(prof))
        args.profile = str(path)
    else:
        from seqsched.backends.profile import resolve_profile_path
        args.profile = str(resolve_profile_path(args.profile))
        prof = read_profile(args.profile)
    ex.warmup()
    trace = load_trace_any(args.trace)
    if args.requests < len(trace):
        trace = Trace(trace.df.iloc[:args.requests].copy(), name=trace.name)
    summary = {"model": args.model, "device": args.device, "dtype": dtype, "attn": args.attn,
               "clock": args.clock,
               "device_name": prof["device"]["name"], "torch": torch.__version__,
               "profile": args.profile, "profile_fit": {k: prof[k]["fit"]
                                                        for k in ("prefill", "decode")},
               "trace": trace.name, "requests": len(trace),
               "max_new_tokens": args.max_new_tokens, "runs": {}}
    md = [f"model {args.model} ({dtype}, {args.attn}, {args.clock} clock) on "
          f"{prof['device']['name']}; "
          f"{len(trace)} requests of {trace.name}; cap {args.max_new_tokens}; "
          f"profile {Path(args.profile).name} (fit mean rel err prefill "
          f"{100 * prof['prefill']['fit']['mean_rel_err']:.1f}%, decode "
          f"{100 * prof['decode']['fit']['mean_rel_err']:.1f}%)", ""]
    for name in names:
        spec = POLICIES[name]
        ex.outputs.clear()
        ex.log.clear()
        res = run_validate(trace, **spec, profile=args.profile, model=args.model,
                           device=args.device, dtype=dtype, attn=args.attn, seed=args.seed,
                           max_new_tokens=args.max_new_tokens, gpu=args.gpu,
                           out=out / name, executor=ex)
        table = markdown_table(res["table"])
        print(f"\n== {name}: live {res['live_wall_s']:.0f} s wall ==")
        print(table)
        t = res["table"].set_index("metric")
        summary["runs"][name] = {
            "spec": spec, "live_wall_s": res["live_wall_s"], "predictor": res["predictor"],
            "profile_mismatch": res["profile_mismatch"],
            "rel_error": t["rel_error"].to_dict(), "simulated": t["simulated"].to_dict(),
            "measured": t["measured"].to_dict()}
        md += [f"### {name} ({spec['policy']}, predictor {spec['predictor']})", "", table, ""]
    (out / "summary.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n",
                                      encoding="utf-8")
    print(f"\nwrote {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
