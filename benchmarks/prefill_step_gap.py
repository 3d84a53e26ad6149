"""TTFT of the requests a recorded vLLM run scheduled the moment it received them, measured
against the replay, by prompt length: a judge of how each cost model prices a step with a
prompt chunk when nothing queues (no slot to wait for, so TTFT is the running step's remainder
plus the request's own prefill step).

A request counts when the run scheduled it within 1 ms of its `queued_ts` (the engine had a
free slot and budget) and at most 2 s into the run (the ramp, few rows). The replay is
`seqsched validate --measured RUN` with each cost model (its OUT/requests.csv), so it carries
the replay's own settings (async scheduling, CUDA-graph padding). Steps above the largest
CUDA-graph capture size (256 tokens at max_num_seqs 128) run without a graph in vLLM 0.19.

    .venv/bin/python benchmarks/prefill_step_gap.py [--run DIR] [--gpu NAME]
        [--profile NAME ...]    # default: the built-in match, its -aic sibling, roofline

Prints, per cost model and prompt bucket, the median measured and simulated TTFT (ms) and
their median difference.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

from seqsched.app.cli import main as cli
from seqsched.backends.profile_registry import builtin_index

from buckets import bucketed

SHARED = "serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19"      # under $SEQSCHED_DATA
BUCKETS = [(1, 255), (256, 511), (512, 1023), (1024, 2047), (2048, 10 ** 6)]


def unqueued(folder: Path, within_s: float = 2.0) -> pd.DataFrame:
    """The run's requests scheduled within 1 ms of receipt, in its first `within_s` seconds."""
    req = pd.read_json(folder / "requests.jsonl", lines=True)
    t0 = req["queued_ts"].min()
    keep = ((req["scheduled_ts"] - req["queued_ts"] < 1e-3)
            & (req["queued_ts"] - t0 <= within_s))
    return req.loc[keep, ["request_id", "input_toks"]].rename(columns={"request_id": "id"})


def replay(folder: Path, gpu: str | None, profile: str | None,
           table: str = "requests.csv") -> tuple[pd.DataFrame, str]:
    """(OUT/`table`, the cost model's name) of `validate --measured` with `profile`
    (None: the default match); `table` "records_sim.csv" gives the simulated records."""
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["validate", "--measured", str(folder), "--out", f"{tmp}/out", "--no-progress"]
        argv += (["--gpu", gpu] if gpu else []) + (["--profile", profile] if profile else [])
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if cli(argv) != 0:
                raise SystemExit(f"validate --measured failed with --profile {profile}")
        used = json.loads(Path(f"{tmp}/out/settings.json").read_text())["simulated_with"]
        return pd.read_csv(f"{tmp}/out/{table}"), str(used["cost_model"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=os.path.join(os.environ.get("SEQSCHED_DATA",
                                                                  "/work/shared/data"), SHARED))
    ap.add_argument("--gpu", default=None)
    ap.add_argument("--profile", action="append", default=None,
                    help="a cost model to replay with (repeatable; default: the built-in "
                         "match, PROFILE-aic where one ships, roofline)")
    args = ap.parse_args()
    folder = Path(args.run)
    picked = unqueued(folder)
    print(f"{folder.name}: {len(picked)} requests scheduled on receipt in the first 2 s")
    print("| cost model | prompt tokens | requests | measured TTFT ms | simulated | "
          "median difference ms |")
    print("|---|---|---|---|---|---|")
    queue = list(args.profile) if args.profile else [None, "roofline"]
    done = set()
    while queue:
        name = queue.pop(0)
        try:
            rows, used = replay(folder, args.gpu, name)
        except SystemExit as e:
            print(f"| {name} | skipped: {e} | | | | |")
            continue
        if name is None and not args.profile and used.startswith("profile:"):
            aic = used.split(":", 1)[1] + "-aic"          # its aiconfigurator sibling
            if aic in builtin_index():
                queue.insert(0, aic)
        if used in done:
            continue
        done.add(used)
        both = picked.merge(rows, on="id")
        both["diff"] = 1000 * (both.ttft_s_simulated - both.ttft_s_measured)
        for label, b in bucketed(both, "input_toks", BUCKETS):
            print(f"| {used} | {label} | {len(b)} | "
                  f"{1000 * b.ttft_s_measured.median():.1f} | "
                  f"{1000 * b.ttft_s_simulated.median():.1f} | {b['diff'].median():+.1f} |")

if __name__ == "__main__":
    main()
