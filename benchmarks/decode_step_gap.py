"""Each cost model's decode-only step time against what a recorded vLLM run measured, at the
run's own state (rows and contexts), second by second: a judge of step-time mechanisms that
is free of the replay's timing drift (the simulation is not run).

For every second of the run's `timeseries.csv` with no prefill (`prompt_throughput` 0 and no
request's first token in it), the running rows and their contexts come from the requests' own
timestamps: a request runs from its first token to its last, having generated
1 + (t - first) / (last - first) x (output - 1) tokens at t (TPOT is even within a request to
first order), so its context is prompt + generated. At 100 instants of the second the cost
model prices one decode-only iteration of those rows (`decode_times(rows, context_sum, 1)`,
and with `--cudagraph-padding`'s wrapper, backends/cuda_graphs.py); its tokens in the second
are the mean of rows / step time. Against the measured `gen_throughput` of that second:
error % = predicted / measured - 1 (positive: the model is slow). Nothing is fitted.

    .venv/bin/python benchmarks/decode_step_gap.py [--run DIR] [--gpu NAME]
        [--profile NAME ...]    # default: the built-in match, its -aic sibling, roofline

Rows are bucketed (1-4, 5-16, 17-32, 33-64, 65-100, 101+ mean rows) with the mean error and
the measured / predicted ms per step (rows x 1000 / tokens).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.app.measured_cli import builtin_model
from seqsched.app.run import RunConfig, build_cost_model
from seqsched.backends.cuda_graphs import graph_padding, pad_cost
from seqsched.backends.profile_registry import match_builtin

from buckets import bucketed

SHARED = "serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19"      # under $SEQSCHED_DATA
BUCKETS = [(1, 4), (5, 16), (17, 32), (33, 64), (65, 100), (101, 10 ** 6)]
INSTANTS = (np.arange(100) + 0.5) / 100


def run_state(folder: Path):
    """(requests with t0-relative first/last token times, the timeseries, the engine kwargs)."""
    req = pd.read_json(folder / "requests.jsonl", lines=True)
    t0 = req["queued_ts"].min()
    req["first_s"] = req["first_token_ts"] - t0
    req["last_s"] = req["last_token_ts"] - t0
    meta = json.loads((folder / "meta.json").read_text())
    return req, pd.read_csv(folder / "timeseries.csv"), meta


def state_at(req: pd.DataFrame, t: float) -> tuple[int, int]:
    """(decoding rows, their summed context) at time t."""
    on = req[(req.first_s <= t) & (req.last_s > t)]
    if on.empty:
        return 0, 0
    span = np.maximum((on.last_s - on.first_s).to_numpy(), 1e-9)
    gen = 1 + (t - on.first_s.to_numpy()) / span * (on.output_toks.to_numpy() - 1)
    return len(on), int(np.round(on.input_toks.to_numpy() + gen).sum())


def decode_seconds(req: pd.DataFrame, ts: pd.DataFrame) -> pd.DataFrame:
    """The decode-only seconds: tick t covers (t - 1, t]; rows and context at 100 instants."""
    out = []
    for t, prompt, gen in zip(ts.t, ts.prompt_throughput, ts.gen_throughput):
        starts = ((req.first_s > t - 1) & (req.first_s <= t)).any()
        if prompt > 0 or gen <= 0 or starts:
            continue
        states = [state_at(req, t - 1 + x) for x in INSTANTS]
        if min(r for r, _ in states) == 0:
            continue
        out.append({"t": t, "gen": gen, "states": states,
                    "rows": float(np.mean([r for r, _ in states]))})
    return pd.DataFrame(out)


def predicted_tokens(cost, states) -> float:
    per = [r / float(cost.decode_times(r, c, 1)[0]) for r, c in states]
    return float(np.mean(per))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=os.path.join(os.environ.get("SEQSCHED_DATA",
                                                                  "/work/shared/data"), SHARED))
    ap.add_argument("--gpu", default="RTX-PRO-6000")
    ap.add_argument("--profile", action="append", default=None)
    args = ap.parse_args()
    folder = Path(args.run)
    req, ts, meta = run_state(folder)
    kw = meta.get("engine_kwargs") or {}
    model = builtin_model(str(meta.get("model") or kw.get("model")))
    tp = int(kw.get("tensor_parallel_size") or 1)
    if args.profile is None:
        match = match_builtin(args.gpu, model, tp)
        args.profile = [p for p in (match, f"{match}-aic" if match else None, "roofline") if p]
    comp = ((meta.get("resolved_config") or {}).get("compilation_config")
            if isinstance(meta.get("resolved_config"), dict) else None)
    padding = graph_padding(int(kw.get("max_num_seqs") or 128),
                            int(kw.get("max_num_batched_tokens") or 2048), recorded=comp)
    secs = decode_seconds(req, ts)
    print(f"{folder.name}: {len(secs)} decode-only seconds, {model} on {args.gpu} TP{tp}")
    for name in args.profile:
        try:
            cost = build_cost_model(RunConfig(gpu=args.gpu, model=model, tp=tp, profile=name))
        except Exception as e:                              # an -aic sibling may not exist
            print(f"  {name}: skipped ({e})")
            continue
        padded = pad_cost(cost, padding)
        secs["plain"] = [predicted_tokens(cost, s) for s in secs.states]
        secs["padded"] = [predicted_tokens(padded, s) for s in secs.states]
        print(f"\n{name}: error % = predicted tokens / measured - 1 (padding on / off); "
              "ms per step")
        print("| mean rows | seconds | error (padded) | error (unpadded) | measured ms | "
              "predicted ms (padded) |")
        print("|---|---|---|---|---|---|")
        for label, b in bucketed(secs, "rows", BUCKETS):
            err_p = 100 * (b.gen / b.padded - 1).mean()         # slow model: fewer tokens
            err_u = 100 * (b.gen / b.plain - 1).mean()
            ms_m = (1000 * b.rows / b.gen).mean()
            ms_p = (1000 * b.rows / b.padded).mean()
            print(f"| {label} | {len(b)} | {err_p:+.1f}% | "
                  f"{err_u:+.1f}% | {ms_m:.2f} | {ms_p:.2f} |")


if __name__ == "__main__":
    main()
