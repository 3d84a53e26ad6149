"""Where a replay's TTFT error comes from when requests queue: how early or late the simulation
schedules, starts and finishes each request of a recorded vLLM run, by when the run scheduled
it (4-s buckets of the run's own `scheduled_ts`).

With a full batch (max_num_seqs running) a queued request starts when an earlier one finishes,
so its TTFT error is inherited from the service time of the requests before it, not from its
own prefill. The table shows the hand-off: a bucket's "finish" lag becomes the "scheduled" lag
of the requests that take its slots. Both clocks are aligned on the median of (the run's
`queued_ts` − the replay's arrival), i.e. the engine's receipt; nothing is fitted.

    .venv/bin/python benchmarks/schedule_lag.py [--run DIR] [--gpu NAME] [--profile NAME]
        [--bucket SECONDS]

The run must be an LLMServingSim folder (requests.jsonl with scheduled/first/last token
times). Columns: requests, median simulated − measured (ms) of the first scheduling, the first
token and the last token, and of the service time (last token − first scheduling).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from prefill_step_gap import SHARED, replay


def lags(folder: Path, records: pd.DataFrame, bucket_s: float) -> pd.DataFrame:
    """Per bucket of the run's scheduling time: count and median lags (ms)."""
    req = pd.read_json(folder / "requests.jsonl", lines=True).set_index("request_id")
    both = req.join(records.set_index("id"), how="inner")
    t0 = (both["queued_ts"] - both["arrival_s"]).median()
    sched = both["scheduled_ts"] - t0
    out = pd.DataFrame({
        "bucket_s": (sched // bucket_s) * bucket_s,
        "scheduled_ms": 1000 * (both["first_scheduled_s"] - sched),
        "first_token_ms": 1000 * (both["first_token_s"] - (both["first_token_ts"] - t0)),
        "last_token_ms": 1000 * (both["finish_s"] - (both["last_token_ts"] - t0)),
    })
    out["service_ms"] = out["last_token_ms"] - out["scheduled_ms"]
    table = out.groupby("bucket_s").median()
    table.insert(0, "requests", out.groupby("bucket_s").size())
    return table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default=os.path.join(os.environ.get("SEQSCHED_DATA",
                                                                  "/work/shared/data"), SHARED))
    ap.add_argument("--gpu", default=None)
    ap.add_argument("--profile", default=None, help="cost model (default: the built-in match)")
    ap.add_argument("--bucket", type=float, default=4.0, help="bucket width, s (default 4)")
    args = ap.parse_args()
    folder = Path(args.run)
    records, used = replay(folder, args.gpu, args.profile, table="records_sim.csv")
    table = lags(folder, records, args.bucket)
    print(f"{folder.name}, {used}: simulated − measured, median ms, by the run's scheduling "
          f"time")
    print("| scheduled at (s) | requests | scheduled | first token | last token | service |")
    print("|---|---|---|---|---|---|")
    for b, r in table.iterrows():
        print(f"| {b:g}-{b + args.bucket:g} | {r.requests:.0f} | {r.scheduled_ms:+.0f} | "
              f"{r.first_token_ms:+.0f} | {r.last_token_ms:+.0f} | {r.service_ms:+.0f} |")


if __name__ == "__main__":
    main()
