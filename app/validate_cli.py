"""`seqsched validate`: run one trace live (LiveExecutor) and in simulation (the profile's cost
model) with the same policy, predictor and seed through `seqsched.app.run.simulate`; print and
save the table of simulated vs measured metrics with relative errors, and a per-request latency
scatter PNG."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError
from seqsched.common.params import parse_params
from seqsched.app.live_common import LOAD_HINT, SHAPE_KEYS, _is_oom, _oom_error, _setup_torch

# metric key in analysis.metrics.summarize -> label in the validation table
VALIDATION_METRICS = {
    "throughput_rps": "throughput (req/s)",
    "output_tokens_per_s": "output tokens/s",
    "makespan_s": "makespan (s)",
    "e2e_s_mean": "e2e latency mean (s)",
    "e2e_s_p50": "e2e latency p50 (s)",
    "e2e_s_p99": "e2e latency p99 (s)",
    "ttft_s_mean": "TTFT mean (s)",
    "ttft_s_p50": "TTFT p50 (s)",
    "tpot_s_mean": "TPOT mean (s)",
    "batches": "batches",
    "preemptions": "preemptions",
}


def load_trace_any(path: str, n: int | None = None, seed: int = 0):
    """A trace file of any readable format, or `synth:NAME` (n requests, seeded)."""
    from seqsched.app.trace_args import DEFAULT_SYNTH_N, SYNTH_PREFIX

    if path.startswith(SYNTH_PREFIX):
        from seqsched.traces.synthetic import generate
        return generate(path[len(SYNTH_PREFIX):], n or DEFAULT_SYNTH_N, seed)
    from seqsched.traces.io import load_trace
    return load_trace(path)


def rel_err(sim: float, live: float) -> float:
    if live is None or sim is None or not math.isfinite(live) or not math.isfinite(sim):
        return float("nan")
    if live == 0:
        return 0.0 if sim == 0 else float("inf")
    return (sim - live) / abs(live)


def comparison_table(sim: dict, live: dict):
    import pandas as pd

    rows = []
    for key, label in VALIDATION_METRICS.items():
        s, m = float(sim.get(key, float("nan"))), float(live.get(key, float("nan")))
        rows.append({"metric": key, "label": label, "simulated": s, "measured": m,
                     "rel_error": rel_err(s, m)})
    return pd.DataFrame(rows)


def scatter_png(sim_records, live_records, path: Path, title: str) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    merged = live_records[["id", "arrival_s", "finish_s"]].merge(
        sim_records[["id", "arrival_s", "finish_s"]], on="id", suffixes=("_live", "_sim"))
    x = (merged["finish_s_live"] - merged["arrival_s_live"]).to_numpy(dtype=float)
    y = (merged["finish_s_sim"] - merged["arrival_s_sim"]).to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(5.2, 5))
    ax.scatter(x, y, s=10, alpha=0.6, edgecolors="none")
    hi = float(max(np.nanmax(x), np.nanmax(y))) * 1.05 if len(x) else 1.0
    ax.plot([0, hi], [0, hi], color="grey", lw=1, ls="--", label="sim = live")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("measured end-to-end latency (s)")
    ax.set_ylabel("simulated end-to-end latency (s)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def profile_mismatches(meta: dict, executor) -> list[str]:
    """What differs between the setup a profile was measured on and the live executor (model
    shape, dtype, device type, attention implementation, clock): each item makes the
    comparison measure the mismatch rather than the simulator."""
    lm = getattr(executor, "lm", None)
    if lm is None or not meta:
        return []
    out = []
    shape = meta.get("model") or {}
    if any(k in shape and shape[k] != lm.shape.get(k) for k in SHAPE_KEYS):
        out.append(f"model shape {shape.get('name', '?')} vs live {lm.name}")
    for label, theirs, ours in (
            ("dtype", meta.get("dtype"), lm.dtype_name),
            ("device", (meta.get("device") or {}).get("type"), executor.device.type),
            ("attention", meta.get("attn_implementation"), lm.attn_implementation),
            ("clock", meta.get("clock", "wall"), getattr(executor, "clock", "wall"))):
        if theirs is not None and theirs != ours:
            out.append(f"{label} {theirs} vs live {ours}")
    return out


def make_run_predictor(predictor: str, params: dict, executor=None):
    """The predictor object both runs share. An LLM length predictor (llm-lora,
    llm-perception) runs on the served model itself when that is a folder with a tokenizer
    (`backends.live.predictor.ServedLengthPredictor`: the LoRA adapter attached to the served
    weights, the query timed live in every predict step); otherwise `predictors.make_predictor`
    (an LLM predictor then answers from its own copy of the model, and the live run times its
    query on the served model with the charged prompt + query shape)."""
    from seqsched.predictors import make_predictor

    if executor is not None and predictor in ("llm-lora", "llm-perception"):
        from seqsched.backends.live.predictor import ServedLengthPredictor, can_serve
        if can_serve(executor):
            mode = "lora" if predictor == "llm-lora" else "perception"
            try:
                return ServedLengthPredictor(executor, mode=mode, **params)
            except TypeError as e:
                raise UserError(f"predictor {predictor}: bad parameter ({e})") from None
    return make_predictor(predictor, **params)


def run_validate(trace, *, policy: str = "vanilla", policy_params: dict | None = None,
                 predictor: str = "oracle", predictor_params: dict | None = None,
                 profile: str, model: str = "tiny", device: str = "cpu",
                 dtype: str = "float32", attn: str = "eager", seed: int = 0,
                 max_new_tokens: int | None = None, gpu: str = "A100-80GB",
                 kv_model: str | None = None, length_mode: str = "forced",
                 out: str | Path | None = None, progress: bool = False,
                 executor=None, clock: str = "wall", memory_fraction: float = 0.9) -> dict:
    """Run `trace` live and simulated; return {table, sim, live, executor, files}.

    Order: the profile, then the live model (a bad or too big model fails before any run),
    then one predictor object shared by both runs (same predictions, same charged cost), the
    simulation, the live run. A live predictor (see `make_run_predictor`) is the executor's
    predictor for the live run: its predict steps run and are timed on the served model.
    Both runs preempt alike: the LiveExecutor resumes a recompute-preempted request from its
    prompt plus kept output, as the simulation does (an executor without `resumes_preempted`
    makes the live run restart such requests, with the engine's warning)."""
    from seqsched.backends.live.executor import LiveExecutor
    from seqsched.backends.profile import load_profile, resolve_profile_path
    from seqsched.backends.specs import MODELS
    from seqsched.app.run import RunConfig, simulate

    prof_path = resolve_profile_path(profile)
    cost = load_profile(prof_path)                    # fail fast on a bad profile
    if kv_model is None:
        kv_model = model if model in MODELS else "llama-7b"
    cfg = RunConfig(policy=policy, policy_params=dict(policy_params or {}), predictor=predictor,
                    predictor_params=dict(predictor_params or {}), gpu=gpu, model=kv_model,
                    profile=str(prof_path), seed=seed, max_new_tokens=max_new_tokens,
                    memory_fraction=memory_fraction, kv_sizing="weights")
    if executor is None:
        try:
            executor = LiveExecutor(model, device=device, dtype=dtype,
                                    attn_implementation=attn, seed=seed,
                                    length_mode=length_mode, clock=clock)
            executor.warmup()
        except RuntimeError as e:
            if not _is_oom(e):
                raise
            raise _oom_error(e, f"loading {model}", device, LOAD_HINT) from None
    mismatch = profile_mismatches(cost.meta, executor)
    pred = make_run_predictor(predictor, dict(predictor_params or {}), executor)
    live_predictor = pred if hasattr(pred, "run_live") else None
    t0 = time.perf_counter()
    sim = simulate(trace, cfg, predictor=pred)
    sim_wall = time.perf_counter() - t0
    import dataclasses
    saved = getattr(executor, "predictor", None)
    if live_predictor is not None:
        executor.predictor = live_predictor
    changes0 = getattr(executor, "prediction_changes", 0)
    t0 = time.perf_counter()
    try:
        live = simulate(trace, dataclasses.replace(cfg, progress=progress), predictor=pred,
                        executor=executor)
    except RuntimeError as e:
        if not _is_oom(e):
            raise
        raise _oom_error(e, f"the live run of {model}", device) from None
    finally:
        if live_predictor is not None:
            executor.predictor = saved
    live_wall = time.perf_counter() - t0
    table = comparison_table(sim.summary, live.summary)
    result = {"table": table, "sim": sim, "live": live, "executor": executor,
              "sim_wall_s": sim_wall, "live_wall_s": live_wall, "cost_model": cost.name,
              "predictor": predictor_note(pred, trace, live_predictor,
                                          getattr(executor, "prediction_changes", 0) - changes0,
                                          sim, live),
              "profile_mismatch": mismatch, "files": {}}
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        files = result["files"]
        table.to_csv(out / "validation.csv", index=False)
        files["table_csv"] = out / "validation.csv"
        (out / "validation.md").write_text(markdown_table(table) + "\n", encoding="utf-8")
        files["table_md"] = out / "validation.md"
        sim.records.to_csv(out / "records_sim.csv", index=False)
        live.records.to_csv(out / "records_live.csv", index=False)
        executor.log_frame().to_csv(out / "steps_live.csv", index=False)
        files["records"] = out / "records_live.csv"
        meta = {"trace": getattr(trace, "name", "trace"), "requests": len(trace),
                "policy": policy, "policy_params": policy_params or {},
                "predictor": predictor, "model": model, "device": device, "dtype": dtype,
                "attn": attn, "profile": str(prof_path), "seed": seed,
                "max_new_tokens": max_new_tokens, "length_mode": length_mode,
                "memory_fraction": memory_fraction,
                "clock": getattr(executor, "clock", "wall"),
                "live_wall_s": live_wall, "sim_wall_s": sim_wall,
                "predictor_run": result["predictor"], "profile_mismatch": mismatch,
                "summary_sim": sim.summary, "summary_live": live.summary}
        (out / "validation.json").write_text(json.dumps(meta, indent=1, default=float) + "\n",
                                             encoding="utf-8")
        files["json"] = out / "validation.json"
        tp = table.set_index("metric")["rel_error"]
        title = (f"{policy} on {len(trace)} requests, {model}: throughput err "
                 f"{100 * tp['throughput_rps']:+.1f}%, p50 e2e err {100 * tp['e2e_s_p50']:+.1f}%")
        files["scatter"] = scatter_png(sim.records, live.records, out / "latency_scatter.png",
                                       title)
    return result


def predictor_note(pred, trace, live_predictor, changes: int, sim, live) -> dict:
    """How the predictor ran, and the seconds its predict steps took on each timeline."""
    c = pred.cost(trace)
    if c.is_free:
        how = "free (nothing on the timeline)"
    elif c.encoder is not None and c.on == "gpu" and live_predictor is not None:
        how = (f"side model {c.encoder.name} on the served device: roofline of --gpu in the "
               "simulation, run and timed in every predict step of the live run")
    elif c.encoder is not None:
        how = f"side model {c.encoder.name} on {c.on}, modelled (roofline) in both runs"
    elif live_predictor is not None:
        how = "length query run live on the served model, timed in every predict step"
    elif c.seconds is not None and np.any(c.seconds):
        how = "measured seconds of the predictor's own run, charged as is in both runs"
    else:
        how = (f"query shape (prompt + query tokens, {c.decode_tokens} decoded, batches of "
               f"{c.batch_size}) timed live on the served model; predictions from the "
               "predictor itself")

    def seconds(run) -> float:
        st = run.steps
        st = st[st["kind"] == "predict"]
        return float((st["end_s"] - st["start_s"]).sum())

    return {"name": getattr(pred, "name", type(pred).__name__), "how": how,
            "predict_steps_s_sim": seconds(sim), "predict_steps_s_live": seconds(live),
            "live_prediction_changes": int(changes)}


def markdown_table(table) -> str:
    from tabulate import tabulate

    rows = [[r.label, _fmt(r.simulated), _fmt(r.measured),
             "n/a" if not math.isfinite(r.rel_error) else f"{100 * r.rel_error:+.1f}%"]
            for r in table.itertuples()]
    return tabulate(rows, headers=["metric", "simulated", "measured", "rel. error"],
                    tablefmt="github")


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return "nan"
    if v == int(v) and abs(v) >= 1:
        return f"{int(v)}"
    return f"{v:.4g}"


def live_policy_params(args) -> dict:
    """--policy-param values, plus the vLLM engine options a continuous policy takes."""
    from seqsched.app.vllm_args import vllm_settings
    from seqsched.policies import STATIC_POLICIES

    vparams, vfields = vllm_settings(args)
    extra = sorted(set(vfields) - {"memory_fraction"})
    if extra:
        raise UserError(f"--{extra[0].replace('_', '-')} applies to simulate, compare, sweep "
                        "and validate --measured; a live validate sizes KV with --memory-fraction")
    params = parse_params(args.param, "--policy-param")
    if args.policy not in STATIC_POLICIES:
        params = {**vparams, **params}
    return params


def cmd_validate(args) -> int:
    from seqsched.analysis.output import check_writable_folder
    check_writable_folder(args.out)
    if getattr(args, "measured", None):
        from seqsched.app.measured_cli import cmd_measured
        return cmd_measured(args)
    if not args.trace:
        raise UserError("validate needs --trace FILE (a live run) or --measured RUN (a "
                        "recorded run)")
    from seqsched.app.trace_args import bench_traffic
    if bench_traffic(args):
        raise UserError("--request-rate/--burstiness/--ramp-up-* rebuild a vLLM bench "
                        "result's arrivals: give them with --measured RESULT.json")
    if not args.profile:
        raise UserError("validate of a live run needs --profile: the live model's calibration "
                        "(seqsched calibrate --model M --out P.json), e.g. the shipped "
                        "--profile tiny-cpu-float32 for --model tiny on cpu")
    args.model = args.model or "tiny"
    args.gpu = args.gpu or "A100-80GB"
    dtype = _setup_torch(args)
    if args.requests is not None and args.requests < 1:
        raise UserError(f"--requests must be >= 1, got {args.requests}")
    trace = load_trace_any(args.trace, args.requests, args.seed)
    if args.requests is not None and args.requests < len(trace):
        from seqsched.traces.request import Trace
        trace = Trace(trace.df.iloc[:args.requests].copy(), name=trace.name)
    res = run_validate(trace, policy=args.policy, policy_params=live_policy_params(args),
                       predictor=args.predictor,
                       predictor_params=parse_params(args.predictor_param, "--predictor-param"),
                       profile=args.profile, model=args.model, device=args.device, dtype=dtype,
                       attn=args.attn, seed=args.seed, max_new_tokens=args.max_new_tokens,
                       gpu=args.gpu, kv_model=args.kv_model, length_mode=args.length_mode,
                       memory_fraction=args.memory_fraction,
                       out=args.out, progress=not args.no_progress and sys.stderr.isatty(),
                       clock=args.clock)
    print(f"{args.policy} on {len(trace)} requests of {trace.name}: live {args.model} on "
          f"{args.device} ({res['live_wall_s']:.1f} s wall) vs {res['cost_model']}")
    if res["profile_mismatch"]:
        print(f"seqsched: warning: the profile was not measured on this setup ("
              f"{'; '.join(res['profile_mismatch'])}); its error includes that mismatch",
              file=sys.stderr)
    p = res["predictor"]
    if p["predict_steps_s_sim"] or p["predict_steps_s_live"]:
        print(f"predictor {p['name']}: {p['how']}; predict steps {p['predict_steps_s_sim']:.3g} s "
              f"simulated vs {p['predict_steps_s_live']:.3g} s measured")
    print(markdown_table(res["table"]))
    for label, path in res["files"].items():
        print(f"wrote {path}")
    return 0
