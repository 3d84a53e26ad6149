"""How close the simulation is to a real vLLM run, per cost model. Default run: the shared
RTX PRO 6000 run (../shared/data/serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19/, vLLM
0.19.0, Llama-3.1-8B, 300 ShareGPT requests at ~10 req/s); `--run DIR` takes any run in the
LLMServingSim bench layout (workload.jsonl with token ids, requests.jsonl, meta.json), e.g.
LLMServingSim's RTX 4090 run extracted to a temporary folder (kept back: never tuned on).

The run replays as `seqsched validate --measured` replays it (traces/recorded.py): the run's
scheduler settings from meta.json (max_num_seqs, max_num_batched_tokens, chunked prefill, the
KV block count vLLM allocated when recorded), prefix caching on as vLLM V1's default, under
`fcfs`; on the roofline (datasheet peaks x the kernel-measured efficiencies of
backends/efficiency.py), and on the built-in kernel profile one change at a time: without its
skew table and with seqsched's former replay (no prefix caching, KV sized by seqsched), then
with the skew correction, then with vLLM's replay settings (the final model), whose vLLM 0.19
scheduler switches (`scheduler_reserve_full_isl`, `async_scheduling`: on, from the run's
resolved config or its vllm_version) are also shown one at a time.
NOTHING is fitted to a run: the profile is the LLMServingSim kernel bundle as imported.
Where a built-in aiconfigurator kernel-table profile of the same GPU x model x TP ships
(`<name>-aic`, scripts/derive_kernel_profiles.py), an "aiconfigurator kernels" column replays
the final settings on it instead; `--profile NAME` (repeatable) adds a column per profile.

    .venv/bin/python benchmarks/kernel_profile_accuracy.py [--run DIR] [--gpu NAME]
        [--model NAME] [--workload JSONL] [--profile NAME ...]

The model is meta.json's (its Hugging Face name to the built-in spec), TP its
tensor_parallel_size. A run with data_parallel_size D replays on D replicas behind the
`vllm-dp` router (vLLM's DP load balancer: the engine with the fewest waiting x 4 + running
requests over counts refreshed every 100 ms, sim/dp_router.py); with
enable_expert_parallel on an MoE model the experts are split over the D x TP GPUs and each MoE
layer gathers the D ranks' tokens (backends/moe_profile.py). The D replicas of an MoE model
step in lockstep as vLLM's DP ranks do (sim/lockstep.py), each step timed at the group's own
token counts: vLLM 0.19's DP padding over the CUDA-graph sizes, the MoE layers over every
rank's gathered tokens, idle ranks' dummy passes. Two columns show the replay without that:
"lockstep at own step times" (each member's step timed alone, the MoE at D balanced ranks of
its own tokens: the state before) and "independent DP replicas" (no lockstep). An MoE run also
gets a column with LLMServingSim's own expert count (its BALANCED router's min(tokens k, E)).

Measured metrics as the layout's README defines them: TTFT = first_token - queued, end-to-end =
last_token - queued, TPOT = (last - first) / (output - 1); simulated: seqsched's records,
TTFT and end-to-end counted from the simulated queued_ts (analysis/measured.py
`engine_receipt`), as `validate --measured` does; one column counts from the client's send.
When the run folder holds LLMServingSim's own summary (`llmservingsim_summary.txt`), its
errors are printed beside ours.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.analysis.measured import engine_receipt
from seqsched.app.cost_setup import build_cost_model
from seqsched.app.measured_cli import builtin_model, recorded_gpu
from seqsched.app.run import RunConfig, describe_backend, simulate
from seqsched.app.vllm_args import apply_to_config, vllm_settings
from seqsched.backends.executor import CostModelExecutor
from seqsched.backends.profile_registry import builtin_index, match_builtin
from seqsched.backends.spec_files import resolve_model
from seqsched.common.errors import UserError
from seqsched.traces.recorded import read_recorded

RUN = "serving/runs/rtxpro6000-llama-3.1-8b-vllm-0.19"


class StepTimesOnly(CostModelExecutor):
    """Lockstep from each member's step time alone (no `dp_timing`: no DP padding, the MoE
    at `gather` balanced ranks of the member's own tokens)."""
    dp_timing = None
METRICS = ("ttft", "tpot", "e2e")
SENT = "final, TTFT from the client's send"     # the clock before the run's queued_ts


def run_gpu(run) -> str:
    """The run's GPU as `validate --measured` reads it (its recorded device name, else its
    folder names); RTX-PRO-6000, the GPU of every run this benchmark was written for, when
    neither says (the held-out runs extracted to /tmp under plain names)."""
    try:
        return recorded_gpu(run)
    except UserError:
        return "RTX-PRO-6000"


def measured(run) -> pd.DataFrame:
    m = run.measured
    out = (m["output_tokens"] - 1).where(m["output_tokens"] > 1)
    return pd.DataFrame({"ttft": m["ttft_s"], "e2e": m["e2e_s"],
                         "tpot": (m["e2e_s"] - m["ttft_s"]) / out})


def simulated(records: pd.DataFrame, start=None) -> pd.DataFrame:
    """TTFT / end-to-end from `start` (the simulated engine receipt), else from the arrival."""
    gen = records["generated_tokens"].astype(float)
    t0 = records["arrival_s"] if start is None else pd.Series(start, index=records.index)
    return pd.DataFrame({
        "ttft": records["first_token_s"] - t0,
        "e2e": records["finish_s"] - t0,
        "tpot": (records["finish_s"] - records["first_token_s"]) / (gen - 1).where(gen > 1)})


def errors(sim: pd.DataFrame, meas: pd.DataFrame) -> dict:
    out = {}
    for metric in METRICS:
        for stat, f in (("mean", np.nanmean), ("p50", np.nanmedian),
                        ("p90", lambda a: np.nanquantile(a, 0.9)),
                        ("p99", lambda a: np.nanquantile(a, 0.99))):
            s, m = f(sim[metric].to_numpy(float)), f(meas[metric].to_numpy(float))
            out[f"{metric} {stat}"] = (s, m, 100.0 * (s - m) / m)
    return out


def llmservingsim_errors(folder: Path) -> dict:
    """LLMServingSim's own Diff% column (its summary's Mean/Median/P90/P99 rows)."""
    path = folder / "llmservingsim_summary.txt"
    if not path.is_file():
        return {}
    names = {"TTFT": "ttft", "TPOT": "tpot", "Latency": "e2e"}
    stats = {"Mean": "mean", "Median": "p50", "P90": "p90", "P99": "p99"}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 5 and parts[0] in names and parts[1] in stats:
            out[f"{names[parts[0]]} {stats[parts[1]]}"] = float(parts[4].rstrip("%"))
    return out


def replay_setup(folder: Path, gpu: str | None = None, model: str | None = None,
                 workload: str | None = None):
    """The recorded run and the RunConfig it replays under (its settings, `fcfs`)."""
    run = read_recorded(folder, "llmservingsim", workload=workload)
    meta = json.loads((folder / "meta.json").read_text()) if (folder / "meta.json").is_file() \
        else {}
    model = model or builtin_model(str(meta.get("model", "llama-3.1-8b")))
    base = apply_to_config(RunConfig(policy="fcfs", gpu=gpu or run_gpu(run), model=model),
                           # vLLM's CUDA-graph padding on, as validate --measured has it
                           *vllm_settings(argparse.Namespace(),
                                          {"cudagraph_padding": True, **run.engine}))
    return run, base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = os.environ.get("SEQSCHED_DATA", "/work/shared/data")
    ap.add_argument("--run", default=str(Path(data) / RUN))
    ap.add_argument("--gpu", default=None, help="default: the run's recorded device")
    ap.add_argument("--model", default=None, help="default: the run's meta.json model")
    ap.add_argument("--workload", default=None,
                    help="the workload JSONL when the run folder has no workload.jsonl")
    ap.add_argument("--profile", action="append", default=[], metavar="NAME",
                    help="also replay the final settings on this profile (built-in name or "
                         "JSON); repeatable")
    args = ap.parse_args()
    folder = Path(args.run)
    run, base = replay_setup(folder, args.gpu, args.model, args.workload)
    dp = int(run.engine.get("data_parallel_size") or 1)       # for the header line
    ep = bool(run.engine.get("enable_expert_parallel")) and resolve_model(base.model).n_experts
    print(f"{folder.name}: {len(run.trace)} requests, {base.model} TP{base.tp} x DP{dp}"
          f"{' (expert parallel)' if ep else ''}; settings {base.policy_params}, KV blocks "
          f"{base.kv_blocks or 'sized by seqsched'}, prefix caching {base.prefix_caching}")
    # each change on its own: the profile without its skew table and seqsched's former replay
    # (no prefix caching, KV sized by seqsched) is the state before this follow-up
    # vLLM 0.19's scheduler switches, one at a time (from the run's resolved config or its
    # version: app/vllm_args.py VERSION_DEFAULTS); the columns before them have neither
    switch = lambda cfg, **kw: dataclasses.replace(               # noqa: E731
        cfg, policy_params={**cfg.policy_params, **kw})
    plain = switch(base, reserve_full_isl=False, async_scheduling=False)
    before = dataclasses.replace(plain, prefix_caching=False, kv_blocks=None)
    configs = {"roofline": (dataclasses.replace(base, profile="roofline"), True),
               "profile, no skew, seqsched replay": (before, False),
               "+ skew": (before, True),
               "+ vLLM replay, no async, no full-ISL gate": (plain, True),
               "+ full-ISL gate only": (switch(plain, reserve_full_isl=True), True),
               "+ async scheduling only": (switch(plain, async_scheduling=True), True),
               "+ vLLM replay (final)": (base, True),
               SENT: (base, True)}
    if resolve_model(base.model).n_experts:
        configs["final, LLMServingSim's expert count"] = (base, True)
    if base.dp_lockstep:                # the states before (sim/lockstep.py)
        configs["final, lockstep at own step times"] = (base, True)
        configs["final, independent DP replicas"] = (dataclasses.replace(base, dp_lockstep=0),
                                                      True)
    bundle = match_builtin(base.gpu, base.model, base.tp)
    aic = [f"{bundle}-aic"] if bundle and f"{bundle}-aic" in builtin_index() else []
    for name in aic + args.profile:
        label = "aiconfigurator kernels" if name in aic else f"profile {name}"
        configs[label] = (dataclasses.replace(base, profile=name), True)
    meas = measured(run)
    rows = {}
    for label, (cfg, skew) in configs.items():
        t0 = time.perf_counter()
        cost = build_cost_model(cfg)         # as validate --measured: DP, EP
        if not skew:
            cost.skew = None
        if label.startswith("final, LLMServingSim"):
            cost.moe = dataclasses.replace(cost.moe, routing="pigeonhole")
        executor = (StepTimesOnly if label.endswith("own step times") else CostModelExecutor)
        res = simulate(run.trace, cfg, executor=executor(cost))
        print(f"{label}: {describe_backend(cfg)} ({time.perf_counter() - t0:.1f} s)")
        # the run's clock: TTFT from the engine's receipt (queued_ts) as vLLM timed it
        start = None if label == SENT else engine_receipt(res.records, res.steps)
        rows[label] = errors(simulated(res.records, start), meas)
    final = rows["+ vLLM replay (final)"]
    keys = list(final)
    table = pd.DataFrame({"measured": [final[k][1] for k in keys]}, index=keys)
    for label, r in rows.items():
        table[f"{label} err %"] = [r[k][2] for k in keys]
    lss = llmservingsim_errors(folder)
    if lss:
        table["LLMServingSim err %"] = [lss.get(k, np.nan) for k in keys]
    print(table.round(4).to_string())
    print(json.dumps({k: round(v[2], 1) for k, v in final.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
