"""Per-family breakdown of one mixed prefill + decode step as each kernel profile prices it:
which term makes the LLMServingSim bundle cheaper than aiconfigurator's kernels on the shared
run's ramp steps (RESULTS.md, issue #10).

The steps judged are those of the ramp (first 3 s) that prefill whole prompts the run scheduled
on receipt and whose start is seen in the timestamps (`ramp_steps`); a step's decode rows are
the requests that have a first token and not yet their last at its start, each at its context
then (prompt + tokens out so far, read linearly between its first and last token timestamps).
All of them hold more than 256 tokens, so vLLM 0.19 ran them with no CUDA graph.
Families (ms, summed over layers):

    gemm      QKV / O / gate-up / down projections          by the step's tokens
    elem      norms, rotary, activation, embedding          by the step's tokens
    attn_pf   attention of the prefill chunk(s) alone       (decode rows 0)
    attn_dec  attention of the decode rows alone            (a decode-only step)
    attn_mix  what the one mixed kernel adds or saves       (mixed - prefill alone - decode alone;
                                                             grid4: the 4-D table's own mixed
                                                             cells + skew; split: FA tiles)
    head      LM head + sampler                             by rows

    .venv/bin/python benchmarks/mixed_step_breakdown.py [--run DIR] [--profile NAME|PATH ...]

Prints one row per step and profile (default: the bundle and its `-aic` sibling).
`--hybrid OUT.json` also writes the first profile with its four GEMM tables taken from the
second (a diagnostic for `seqsched validate --measured RUN --profile OUT.json`, not shipped).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.profile_registry import load_cost_profile, profile_path

SHARED = "serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19"      # under $SEQSCHED_DATA
GEMMS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
BUDGET = 2048        # the run's max_num_batched_tokens: a step that fits holds whole prompts


def ramp_steps(req: pd.DataFrame, within_ms: float = 3000.0) -> list[tuple]:
    """(ids, start, end) of the steps that prefill whole prompts the run scheduled on receipt
    in its first `within_ms`, whose start is seen: the step runs from the last step-output
    event after their scheduling (another request's queued / first / last token timestamp: the
    engine ingests requests and emits tokens when a step ends) to their first token."""
    t0 = req.queued_ts.min()
    events = np.sort(np.concatenate([req.queued_ts, req.first_token_ts, req.last_token_ts]))
    now = req[(req.scheduled_ts - req.queued_ts < 1e-3) & (req.queued_ts - t0 < within_ms / 1e3)]
    out = []
    for end, d in now.groupby("first_token_ts", sort=True):
        seen = events[(events > d.scheduled_ts.max() + 1e-5) & (events < end - 5e-4)]
        if len(seen) and int(d.input_toks.sum()) < BUDGET:
            out.append((list(d.request_id), float(seen.max()), float(end)))
    return out


def decode_rows(req: pd.DataFrame, t: float) -> np.ndarray:
    """Contexts (prompt + tokens out) of the requests decoding at instant `t`."""
    run = req[(req.first_token_ts < t) & (req.last_token_ts > t)]
    frac = (t - run.first_token_ts) / (run.last_token_ts - run.first_token_ts)
    return (run.input_toks + 1 + np.floor(frac * (run.output_toks - 1))).to_numpy(float)


def breakdown(cost, chunks, ctx: np.ndarray) -> dict:
    """ms per family of one step prefilling `chunks` (whole prompts) beside decode rows of
    contexts `ctx`, as cost model `cost` prices it."""
    new, past = np.asarray(chunks, float), np.zeros(len(chunks))
    tokens, rows, nd = float(new.sum()) + len(ctx), len(chunks) + len(ctx), len(ctx)
    gemm = sum(float(op.seconds(tokens)) for op in cost.dense if op.name in GEMMS)
    elem = sum(float(op.seconds(tokens)) for op in cost.dense if op.name not in GEMMS)
    head = sum(float(op.seconds(float(rows))) for op in cost.per_sequence)
    spread = dict(decode_rows=nd, decode_context=int(ctx.sum()),
                  decode_max=int(ctx.max()), decode_min=int(ctx.min()))
    lin = float(cost._linear(tokens, float(rows)))
    total = cost.prefill_time(new, past, **spread)
    pf_alone = cost.prefill_time(new, past) - float(cost._linear(float(new.sum()),
                                                                 float(len(chunks))))
    dec_alone = float(cost.decode_times(nd, int(ctx.sum()), 1, int(ctx.max()),
                                        int(ctx.min()))[0]) - float(cost._linear(nd, nd))
    attn = total - lin
    out = {"gemm": gemm, "elem": elem, "attn_pf": pf_alone, "attn_dec": dec_alone,
           "attn_mix": attn - pf_alone - dec_alone, "head": head, "total": total}
    return {k: 1e3 * v for k, v in out.items()}


def write_hybrid(base: str, gemms_from: str, out: Path) -> None:
    """`base`'s profile JSON with the GEMM tables of `gemms_from` (built-in names or paths)."""
    def read(n):
        return json.loads((Path(n) if Path(n).is_file() else profile_path(n)).read_text())
    data, other = read(base), read(gemms_from)
    for k in GEMMS:
        data["dense"][k] = other["dense"][k]
    data["name"] = f"{data['name']}+gemm-from-{other['name']}"
    out.write_text(json.dumps(data))
    print(f"wrote {out}: {data['name']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=os.path.join(os.environ.get("SEQSCHED_DATA",
                                                                  "/work/shared/data"), SHARED))
    ap.add_argument("--profile", action="append", default=None)
    ap.add_argument("--hybrid", default=None, help="write profile 1 with profile 2's GEMMs")
    args = ap.parse_args()
    req = pd.read_json(Path(args.run) / "requests.jsonl", lines=True).set_index("request_id",
                                                                                drop=False)
    names = args.profile or ["rtxpro6000-llama-3.1-8b-tp1", "rtxpro6000-llama-3.1-8b-tp1-aic"]
    models = {n: load_cost_profile(n) for n in names}
    if args.hybrid:
        write_hybrid(names[0], names[1], Path(args.hybrid))
    print("| step | decode ctx mean (min-max) | measured ms | profile | gemm | elem | attn_pf | "
          "attn_dec | attn_mix | head | total |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for ids, start, end in ramp_steps(req):
        ctx = decode_rows(req.drop(index=ids), start + 1e-4)
        measured = 1e3 * (end - start)
        chunks = [int(req.loc[i, "input_toks"]) for i in ids]
        label = f"{'+'.join(ids)} {sum(chunks)}+{len(ctx)}"
        for n, cost in models.items():
            b = breakdown(cost, chunks, ctx)
            print(f"| {label} | {ctx.mean():.0f} ({ctx.min():.0f}-{ctx.max():.0f}) x "
                  f"{len(ctx)} | {measured:.1f} | {n} | "
                  + " | ".join(f"{b[k]:.2f}" for k in ("gemm", "elem", "attn_pf", "attn_dec",
                                                        "attn_mix", "head", "total")) + " |")


if __name__ == "__main__":
    main()
