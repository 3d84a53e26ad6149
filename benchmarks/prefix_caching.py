"""Prefix caching and cache-aware routing on conversation traffic: hit rate and TTFT with and
without caching, in the same process.

    python benchmarks/prefix_caching.py [--requests 2000] [--workload DIR/workload.jsonl]

Workloads:
- `synth:shared-prefix` (inference-perf's shape, multi-turn): 8 groups with a 2,048-token
  system prompt, 4-turn conversations (question 128, answer 256 tokens), Llama-3-8B on one
  H100, at a moderate and a high request rate;
- the same at the high rate on 4 replicas: round-robin vs SGLang-style prefix-aware routing;
- with `--workload`, the 300 ShareGPT requests of the shared real vLLM run (token ids: the
  exact vLLM block hashes), replayed at their recorded arrival times.
The baseline of every row is the same run with `--no-prefix-caching`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.traces.request import Trace  # noqa: E402
from seqsched.traces.synthetic import generate  # noqa: E402


def real_workload(path: Path) -> Trace:
    df = pd.read_json(path, lines=True)
    return Trace(pd.DataFrame({"id": [f"w{i}" for i in range(len(df))],
                               "arrival_s": df["arrival_time_ns"] / 1e9,
                               "prompt_tokens": df["input_toks"],
                               "output_tokens": df["output_toks"],
                               "input_tok_ids": df["input_tok_ids"]}), name=path.parent.name)


def row(name: str, trace: Trace, **kw) -> dict:
    base = RunConfig(policy="fcfs", model="llama-3-8b", gpu="H100-SXM", **kw)
    off = simulate(trace, base).summary
    on = simulate(trace, RunConfig(**{**base.__dict__, "prefix_caching": True})).summary
    return {"workload": name, "requests": len(trace),
            "hit rate (tokens)": on.get("prefix_hit_rate_tokens", float("nan")),
            "hit rate (requests)": on.get("prefix_hit_rate_requests", float("nan")),
            "prefill tokens saved": on.get("prefix_cached_tokens", 0),
            "TTFT mean off s": off["ttft_s_mean"], "TTFT mean on s": on["ttft_s_mean"],
            "TTFT p99 off s": off["ttft_s_p99"], "TTFT p99 on s": on["ttft_s_p99"],
            "TTFT mean on/off": on["ttft_s_mean"] / off["ttft_s_mean"],
            "out tok/s on/off": on["output_tokens_per_s"] / off["output_tokens_per_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--workload", type=Path, default=None,
                    help="workload.jsonl of the shared real vLLM run (token ids)")
    args = ap.parse_args()
    shape = dict(groups=8, users=16, questions=4, system_prompt_len=2048, question_len=128,
                 output_len=256, think_s=10.0)
    rows = []
    for rate in (8.0, 32.0):
        t = generate("shared-prefix", args.requests, seed=0, rate=rate, **shape)
        rows.append(row(f"shared-prefix {rate:g} req/s, 1 replica", t))
    t = generate("shared-prefix", args.requests, seed=0, rate=64.0, **shape)
    for router in ("round-robin", "prefix-aware"):
        rows.append(row(f"shared-prefix 64 req/s, 4 replicas, {router}", t, replicas=4,
                        router=router))
    if args.workload is not None:
        rows.append(row("real ShareGPT run (token ids), 1 replica", real_workload(args.workload)))
    print(tabulate(pd.DataFrame(rows), headers="keys", tablefmt="github", showindex=False,
                   floatfmt=".3g"))


if __name__ == "__main__":
    main()
