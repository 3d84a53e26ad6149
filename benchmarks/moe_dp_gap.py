"""Where the replay of a recorded data-parallel MoE run loses its TTFT tail: a judge of
mechanisms, nothing fitted (issue #10; the held-out Qwen3-30B-A3B DP2 + EP run).

The run's TTFT tail is queueing for `max_num_seqs` slots (each DP engine holds 128): a queued
request starts when a running one finishes, so the tail is set by the finish times of the
requests before it. Four tables tell the candidate mechanisms apart:

1. by arrival window (5 s): measured and simulated TTFT, the wait from receipt to first
   schedule (`scheduled_ts - queued_ts`; simulated: first scheduled - the engine receipt of
   analysis/measured.py), and the TPOT / end-to-end residuals (simulated - measured);
2. generation rate at the run's own load: measured `gen_throughput` summed over the seconds
   whose measured running count per DP rank falls in a bucket, against the replay's generated
   tokens (decode tokens + first tokens) in the same seconds, up to the end of the measured
   queue (while the two running curves agree; their ratio is printed as the check);
3. decode-only DP rounds at the run's own state (benchmarks/decode_step_gap.py's judge made
   DP-aware): for each second with no prefill, the running requests at 20 instants, split over
   the DP ranks by arrival order (the `vllm-dp` router alternates equal ranks), each rank's
   decode priced alone and then at the group's counts exactly as sim/lockstep.py does (DP
   padding over the CUDA-graph sizes, the MoE layers over the gathered tokens, the slowest
   rank); measured ms per round = rows x 1000 / gen_throughput;
4. sensitivity of the replay (one-off diagnostics, never defaults): the DP router's stats
   period (sim/dp_router.py PERIOD_S: live counts, 100 ms as vLLM, 500 ms), every round's
   time x (1 + e), and X ms added to every round whose synced CUDA-graph mode is NONE (a rank
   above the largest capture size: vLLM 0.19 `dp_utils.py:143` takes the group's minimum mode,
   so every rank of that round runs without a graph).

    .venv/bin/python benchmarks/moe_dp_gap.py --run DIR [--gpu NAME] [--profile NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd

import seqsched.sim.dp_router as dp_router
from seqsched.analysis.measured import engine_receipt, error_table, sim_latencies
from seqsched.app.cli import build_parser
from seqsched.app.cost_setup import build_cost_model
from seqsched.app.measured_cli import measured_config
from seqsched.app.run import execute, prepare
from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.profile_registry import builtin_index
from seqsched.backends.vllm_engine import cudagraph_capture_sizes
from seqsched.sim.lockstep import DPPadding
from seqsched.traces.recorded import read_recorded

from buckets import bucketed

KEYS = ("ttft_mean_ms", "ttft_p50_ms", "ttft_p90_ms", "tpot_mean_ms", "e2e_mean_ms")
ROW_BUCKETS = [(1, 48), (49, 96), (97, 127), (128, 10 ** 6)]
INSTANTS = (np.arange(20) + 0.5) / 20


class Perturbed:
    """A kernel-profile cost model whose DP lockstep rounds (`padded_time`, `dummy_time`: every
    round of a lockstep group is timed through them) last (1 + `scale`) times as long, plus
    `none_s` when the round's largest rank is above `cap` tokens (synced mode NONE)."""

    def __init__(self, cost, scale: float = 0.0, none_s: float = 0.0, cap: int = 0) -> None:
        self.cost, self.scale, self.none_s, self.cap = cost, scale, none_s, cap

    def __getattr__(self, name):
        if name.startswith("__") or name in ("cost", "scale", "none_s", "cap"):
            raise AttributeError(name)
        return getattr(self.cost, name)

    def _adjust(self, t: float, largest) -> float:
        extra = self.none_s if largest is not None and largest > self.cap else 0.0
        return t * (1.0 + self.scale) + extra

    def padded_time(self, alone_s, tokens, rows, padded_tokens, moe_tokens, moe_largest=None):
        t = self.cost.padded_time(alone_s, tokens, rows, padded_tokens, moe_tokens, moe_largest)
        return self._adjust(t, moe_largest)

    def dummy_time(self, padded_tokens, moe_tokens, moe_largest=None):
        return self._adjust(self.cost.dummy_time(padded_tokens, moe_tokens, moe_largest),
                            moe_largest)


def replay(folder: Path, gpu: str, profile: str | None, **perturb):
    """`seqsched validate --measured` on `folder` (its own code path), optionally perturbed;
    returns (run, result, error % Series)."""
    argv = ["validate", "--measured", str(folder), "--gpu", gpu, "--out", "/nonexistent"]
    args = build_parser().parse_args(argv + (["--profile", profile] if profile else []))
    with contextlib.redirect_stderr(io.StringIO()):
        run = read_recorded(args.measured, None, workload=None, traffic=None)
        cfg = measured_config(args, run)
        cost = build_cost_model(cfg)
        if perturb:
            cost = Perturbed(cost, **perturb)
        result = execute(prepare(run.trace, cfg, executor=CostModelExecutor(cost)))
    start = (engine_receipt(result.records, result.steps) if run.clock == "queued" else None)
    sim = sim_latencies(result.records, start)
    err = error_table(sim, run.measured).set_index("metric")["error_pct"]
    return run, result, sim, err


def measured_requests(folder: Path) -> pd.DataFrame:
    req = pd.read_json(folder / "requests.jsonl", lines=True).sort_values("queued_ts")
    t0 = req.queued_ts.min()
    return req.assign(q_s=req.queued_ts - t0, wait_s=req.scheduled_ts - req.queued_ts,
                      first_s=req.first_token_ts - t0, last_s=req.last_token_ts - t0)


def arrival_table(folder: Path, result, sim: pd.DataFrame) -> None:
    req = measured_requests(folder).reset_index(drop=True)
    rec = result.records.set_index("id").loc[req.request_id]
    lat = sim.set_index("id").loc[req.request_id]
    receipt = rec.first_token_s.to_numpy() - lat.ttft_s.to_numpy()   # the simulated queued_ts
    d = pd.DataFrame({
        "win": (req.q_s // 5 * 5).astype(int).to_numpy(),
        "ttft_m": (req.first_token_ts - req.queued_ts).to_numpy(), "ttft_s": lat.ttft_s.to_numpy(),
        "wait_m": req.wait_s.to_numpy(), "wait_s": rec.first_scheduled_s.to_numpy() - receipt,
        "e2e_m": (req.last_token_ts - req.queued_ts).to_numpy(), "e2e_s": lat.e2e_s.to_numpy()})
    d["tpot_m"] = (req.last_token_ts - req.first_token_ts).to_numpy() / np.maximum(
        req.output_toks.to_numpy() - 1, 1)
    d["tpot_s"] = (d.e2e_s - d.ttft_s) / np.maximum(req.output_toks.to_numpy() - 1, 1)
    print("| arrivals (s) | requests | TTFT measured / simulated (s) | wait measured / "
          "simulated (s) | TPOT error | end-to-end sim - measured (s) |")
    print("|---|---|---|---|---|---|")
    for win, g in d.groupby("win"):
        print(f"| {win}-{win + 5} | {len(g)} | {g.ttft_m.mean():.3f} / {g.ttft_s.mean():.3f} | "
              f"{g.wait_m.mean():.3f} / {g.wait_s.mean():.3f} | "
              f"{100 * (g.tpot_s.mean() / g.tpot_m.mean() - 1):+.1f}% | "
              f"{(g.e2e_s - g.e2e_m).mean():+.2f} |")
    ts = pd.read_csv(folder / "timeseries.csv")
    busy = ts.t[ts.waiting > 0]
    if busy.empty:
        return
    lo, hi = float(busy.min()) - 1, float(busy.max())       # tick t covers (t - 1, t]
    frees = (req.last_s > lo) & (req.last_s <= hi)
    queued = d.wait_m > 0.05
    print(f"\nWhile the measured queue lasts (t {lo:.0f}-{hi:.0f} s): the {int(frees.sum())} "
          f"requests finishing then (their slots go to the queue) finish "
          f"{(d.e2e_s - d.e2e_m)[frees.to_numpy()].mean():+.2f} s off in the replay "
          f"(end-to-end, simulated - measured); the {int(queued.sum())} requests the run held "
          f"over 50 ms wait {(d.wait_s - d.wait_m)[queued].mean():+.2f} s and reach their "
          f"first token {(d.ttft_s - d.ttft_m)[queued].mean():+.2f} s (simulated - measured); "
          f"their share of the TTFT mean's gap: "
          f"{100 * (d.ttft_s - d.ttft_m)[queued].sum() / (d.ttft_s - d.ttft_m).sum():.0f}%.")


def rate_table(folder: Path, result, dp: int) -> None:
    ts = pd.read_csv(folder / "timeseries.csv")
    steps, rec = result.steps, result.records
    secs = np.ceil(steps.end_s.to_numpy()).astype(int)
    gen = pd.Series(steps.decode_tokens.to_numpy(), index=secs).groupby(level=0).sum()
    gen = gen.add(pd.Series(1, index=np.ceil(rec.first_token_s.to_numpy()).astype(int))
                  .groupby(level=0).sum(), fill_value=0)
    fs, fin = rec.first_scheduled_s.to_numpy(), rec.finish_s.to_numpy()
    t = ts.t.astype(int).to_numpy()
    last_q = int(t[ts.waiting.to_numpy() > 0].max()) if (ts.waiting > 0).any() else int(t.max())
    d = pd.DataFrame({"t": t, "rank_rows": ts.running.to_numpy() / dp,
                      "meas": ts.gen_throughput.to_numpy(),
                      "sim": gen.reindex(t).fillna(0).to_numpy(),
                      "run_m": ts.running.to_numpy(),
                      "run_s": [int(((fs <= x) & (fin > x)).sum()) for x in t],
                      "prompt": ts.prompt_throughput.to_numpy()})
    d = d[(d.t >= 2) & (d.t <= last_q)]
    print("| running per rank (measured) | seconds | prompt tokens/s | generated: measured / "
          "simulated | error | running-seconds simulated / measured |")
    print("|---|---|---|---|---|---|")
    for label, g in bucketed(d, "rank_rows", ROW_BUCKETS):
        print(f"| {label} | {len(g)} | {g.prompt.mean():.0f} | "
              f"{g.meas.sum():.0f} / {g.sim.sum():.0f} | "
              f"{100 * (g.sim.sum() / g.meas.sum() - 1):+.1f}% | "
              f"{g.run_s.sum() / g.run_m.sum():.3f} |")


def round_time(cost, pad: DPPadding, states) -> float:
    """One decode-only lockstep round: ranks' (rows, context sum, max, min) as sim/lockstep.py
    times them (an idle rank runs the one-token dummy pass)."""
    rows = [max(s[0], 1) for s in states]
    padded = pad.padded(rows)
    gathered, largest = sum(padded), max(padded)
    out = []
    for (r, c, hi, lo), p in zip(states, padded):
        if r == 0:
            out.append(cost.dummy_time(p, gathered, largest))
            continue
        kw = {"context_max": hi, "context_min": lo} if cost.wants_decode_spread else {}
        alone = float(cost.decode_times(r, c, 1, **kw)[0])
        out.append(cost.padded_time(alone, r, r, p, gathered, largest))
    return max(out)


def decode_table(folder: Path, gpu: str, profile: str | None, dp: int) -> None:
    cost, engine = replay_setup_cost(folder, gpu, profile)
    pad = DPPadding(cudagraph_capture_sizes(int(engine.get("max_num_seqs") or 128),
                                            int(engine.get("max_num_batched_tokens") or 2048)))
    req = measured_requests(folder).reset_index(drop=True)
    rank = np.arange(len(req)) % dp
    ts = pd.read_csv(folder / "timeseries.csv")
    first, last = req.first_s.to_numpy(), req.last_s.to_numpy()
    span = np.maximum(last - first, 1e-9)
    out = []
    for t, prompt, gen in zip(ts.t, ts.prompt_throughput, ts.gen_throughput):
        if prompt > 0 or gen <= 0 or ((first > t - 1) & (first <= t)).any():
            continue
        per = []
        for x in t - 1 + INSTANTS:
            on = (first <= x) & (last > x)
            ctx = req.input_toks.to_numpy() + 1 + (x - first) / span * (
                req.output_toks.to_numpy() - 1)
            states = []
            for k in range(dp):
                c = ctx[on & (rank == k)]
                states.append((len(c), int(c.sum()), int(c.max()) if len(c) else 0,
                               int(c.min()) if len(c) else 0))
            n = sum(s[0] for s in states)
            if n:
                per.append((n, round_time(cost, pad, states)))
        if len(per) == len(INSTANTS):
            rows = float(np.mean([n for n, _ in per]))
            out.append((rows / dp, 1000 * rows / gen,
                        1000 * rows / float(np.mean([n / s for n, s in per]))))
    d = pd.DataFrame(out, columns=["rank_rows", "meas_ms", "pred_ms"])
    print("| decode rows per rank | seconds | measured ms / round | predicted ms | "
          "predicted - measured ms | error |")
    print("|---|---|---|---|---|---|")
    for label, g in bucketed(d, "rank_rows", [(1, 8), (9, 32), (33, 64), (65, 100),
                                              (101, 10 ** 6)]):
        print(f"| {label} | {len(g)} | {g.meas_ms.mean():.2f} | "
              f"{g.pred_ms.mean():.2f} | {(g.pred_ms - g.meas_ms).mean():+.2f} | "
              f"{100 * (g.pred_ms / g.meas_ms - 1).mean():+.1f}% |")


def replay_setup_cost(folder: Path, gpu: str, profile: str | None):
    argv = ["validate", "--measured", str(folder), "--gpu", gpu, "--out", "/nonexistent"]
    args = build_parser().parse_args(argv + (["--profile", profile] if profile else []))
    with contextlib.redirect_stderr(io.StringIO()):
        run = read_recorded(args.measured, None, workload=None, traffic=None)
        cfg = measured_config(args, run)
        return build_cost_model(cfg), run.engine


def sensitivity(folder: Path, gpu: str, profile: str | None, cap: int) -> None:
    print("| replay | " + " | ".join(k.replace("_ms", "") for k in KEYS) + " |")
    print("|---|" + "---|" * len(KEYS))

    def row(label, **kw):
        err = replay(folder, gpu, profile, **kw)[3]
        print(f"| {label} | " + " | ".join(f"{err[k]:+.1f}%" for k in KEYS) + " |")

    period = dp_router.PERIOD_S
    try:
        for p, label in ((period, "as validate (DP stats every 100 ms)"),
                         (1e-9, "DP router on live counts"), (0.5, "DP stats every 500 ms")):
            dp_router.PERIOD_S = p
            row(label)
    finally:
        dp_router.PERIOD_S = period
    for e in (0.01, 0.02, 0.04):
        row(f"every round x {1 + e:.2f}", scale=e, cap=cap)
    for x in (2.0, 4.0):
        row(f"+{x:.0f} ms on NONE-mode rounds (a rank > {cap} tokens)", none_s=x / 1000,
            cap=cap)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a recorded DP run (LLMServingSim layout)")
    ap.add_argument("--gpu", default="RTX-PRO-6000")
    ap.add_argument("--profile", action="append", default=None,
                    help="cost model(s); default: the built-in match, then its -aic sibling")
    ap.add_argument("--rates-only", action="store_true",
                    help="tables 1-2 only (e.g. a DP1 dense run as the control)")
    args = ap.parse_args()
    folder = Path(args.run)
    if not (folder / "requests.jsonl").is_file():
        print(f"skipped: {folder} holds no recorded run (requests.jsonl)")
        return 0
    for profile in args.profile or [None, "aic"]:
        if profile == "aic":        # the built-in match's -aic sibling, where one ships
            cost, _ = replay_setup_cost(folder, args.gpu, None)
            profile = f"{cost.name.removeprefix('profile:')}-aic"
            if profile not in builtin_index():
                continue
        run, result, sim, err = replay(folder, args.gpu, profile or None)
        dp = int(run.engine.get("data_parallel_size") or 1)
        cap = max(cudagraph_capture_sizes(int(run.engine.get("max_num_seqs") or 128),
                                          int(run.engine.get("max_num_batched_tokens")
                                              or 2048)))
        print(f"\n## {folder.name}, profile {profile or 'built-in match'} (DP{dp})\n")
        arrival_table(folder, result, sim)
        print()
        rate_table(folder, result, dp)
        if args.rates_only:
            continue
        print()
        decode_table(folder, args.gpu, profile, dp)
        print()
        sensitivity(folder, args.gpu, profile, cap)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
