"""Recorded serving runs: what a real server was given and what it measured, per request.

    run = read_recorded("runs/rtxpro6000-llama-3.1-8b-vllm-0.19/")
    run.trace         # the workload to replay (ids, arrival_s, prompt/output tokens)
    run.measured      # per request: id, arrival_s, ttft_s, e2e_s, prompt/output tokens, itls
    run.engine        # engine settings from the run's metadata (vLLM option names)
    run.timeseries    # per-second running / waiting / KV use, or None

Two formats (`RECORDED_FORMATS`):

- `llmservingsim`: the LLMServingSim bench layout, a folder with `workload.jsonl` (input_toks,
  output_toks, arrival_time_ns offset from the start), `requests.jsonl` (what vLLM measured,
  in workload order: input_toks, output_toks, queued_ts, first_token_ts, last_token_ts on the
  engine clock), `meta.json` (`engine_kwargs`; newer runs also `kv_cache`: the block count
  vLLM allocated, pinned here, and whether prefix caching was on) and optionally
  `timeseries.csv`. As that layout's README defines them: TTFT = first_token - queued,
  end-to-end = last_token - queued. The workload's `input_tok_ids` travel with the trace (the
  prefix cache's block keys); prefix caching is on unless the metadata says otherwise, as in
  vLLM V1 (`vllm/engine/arg_utils.py`: "V1 always uses chunked prefills and prefix caching
  for non-pooling tasks"; an RTX 4090 vLLM 0.19.0 run's resolved config has it on without
  asking). `resolved_config.scheduler_config` (newer runs) gives `async_scheduling` and
  `scheduler_reserve_full_isl` as vLLM resolved them; where absent, `validate --measured`
  takes the defaults of the run's `vllm_version` (app/vllm_args.py `VERSION_DEFAULTS`).
  `enforce_eager` comes from `engine_kwargs` or `resolved_config.model_config`, the CUDA-graph
  capture sizes and mode from `resolved_config.compilation_config` (backends/cuda_graphs.py).
- `vllm-bench`: the result JSON of vLLM's `benchmark_serving.py` / `vllm bench serve`
  (`input_lens`, `output_lens`, `ttfts`, `itls`, and in newer versions `latencies` and
  `start_times`). Arrivals are the recorded `start_times` when present; otherwise rebuilt as
  vLLM's `get_request` draws them (vllm/benchmarks/serve.py): gaps ~ Gamma(shape=burstiness,
  scale=1/(rate x burstiness)) from numpy's generator seeded with the run's seed, scaled so
  the last request goes out at N / rate; all at t = 0 for an infinite rate; a result that
  records a ramp-up (`ramp_up_strategy`, `ramp_up_start_rps`, `ramp_up_end_rps`, written
  only when one was used, serve.py:1854-1857) gets each request's ramped rate and no
  rescaling (traces/bench_arrivals.py); one that shows a ramp-up (some of those keys, or
  `rps_change_events`, serve.py:1015-1016) without all three is rebuilt at its rate, with
  one note. vLLM bench's
  traffic flags (`--request-rate`, `--burstiness`, `--ramp-up-*`) override the result's
  keys and rebuild the arrivals even where `start_times` exist. End-to-end is
  `latencies` when present, else TTFT + the sum of the request's ITLs (the same quantity).
  A stream that sent several tokens per chunk (fewer recorded gaps than tokens after the
  first, as vLLM V0's multi-step scheduling streams) gets one note: its ITL times chunks.
  The client's `max_concurrency` (vLLM bench's semaphore) goes to `engine` and is replayed
  closed-loop (sim/client.py) on rebuilt arrivals; recorded `start_times` are the sends
  (`output.start_time = st`, vllm/benchmarks/lib/endpoint_request_func.py:192, after the
  semaphore), so they already carry the cap and replay as they are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.traces.bench_arrivals import RAMP_KEYS, bench_arrivals, ramp_up
from seqsched.traces.request import Trace, TraceError

RECORDED_FORMATS = ("llmservingsim", "vllm-bench")
BENCH_LISTS = ("input_lens", "output_lens", "ttfts", "itls")
TIMESERIES_COLUMNS = ("t", "running", "waiting", "kv_cache_pct")


@dataclass
class RecordedRun:
    trace: Trace
    measured: pd.DataFrame          # id, arrival_s, prompt_tokens, output_tokens, ttft_s, e2e_s,
                                    # itls (list of seconds, or None)
    engine: dict = field(default_factory=dict)   # vLLM engine options found in the metadata
    timeseries: pd.DataFrame | None = None
    format: str = ""
    name: str = "recorded"
    notes: list[str] = field(default_factory=list)
    clock: str = "sent"             # TTFT starts when the client sent the request ("sent") or
                                    # when the engine core read it ("queued", vLLM's queued_ts)
    path: str = ""                  # where it was read from (a folder's names may say the GPU)


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "requests.jsonl").is_file() or (path / "workload.jsonl").is_file():
            return "llmservingsim"
        raise TraceError(f"recorded run {path}: a folder without workload.jsonl / requests.jsonl; "
                         "give an LLMServingSim bench folder or a vLLM bench result JSON")
    if path.suffix == ".json":
        return "vllm-bench"
    raise TraceError(f"recorded run {path}: unknown format; give an LLMServingSim bench folder "
                     "(workload.jsonl + requests.jsonl + meta.json) or a vLLM bench result "
                     "JSON (--measured-format llmservingsim|vllm-bench)")


def read_recorded(path: str | Path, fmt: str | None = None, *, seed: int | None = None,
                  workload: str | Path | None = None,
                  traffic: dict | None = None) -> RecordedRun:
    """Read a recorded run; `seed` overrides the bench result's seed when arrivals must be
    rebuilt; `workload` is an LLMServingSim run's workload JSONL kept outside its folder
    (LLMServingSim's repository keeps it in `workloads/`, named by meta.json's dataset_path);
    `traffic`: vLLM bench's traffic options given as flags (request_rate, burstiness,
    ramp_up_*), which override the result's and rebuild its arrivals."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"recorded run {path}: no such file or folder")
    fmt = fmt or detect_format(path)
    if fmt not in RECORDED_FORMATS:
        raise TraceError(f"unknown recorded-run format {fmt!r}; use "
                         f"{' or '.join(RECORDED_FORMATS)}")
    if traffic and fmt != "vllm-bench":
        raise TraceError(f"{', '.join('--' + k.replace('_', '-') for k in traffic)}: vLLM "
                         "bench's traffic options rebuild a vLLM bench result's arrivals; an "
                         "LLMServingSim run replays its own arrival times")
    run = (read_llmservingsim(path, Path(workload) if workload else None)
           if fmt == "llmservingsim" else read_vllm_bench(path, seed=seed, traffic=traffic))
    run.path = str(path)
    return run


# -- LLMServingSim bench layout --------------------------------------------------------------
def recorded_traffic(source: str) -> Trace | None:
    """The requests of a recorded run given where a trace is expected (simulate, compare,
    sweep): a vLLM bench result JSON's, with its arrivals as `read_vllm_bench` rebuilds them;
    None for anything else (a bench folder's workload.jsonl is read as a trace file)."""
    path = Path(source)
    if path.suffix != ".json" or not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            head = f.read(1 << 16)          # the keys, not the whole of a large trace file
    except OSError:
        return None
    if '"input_lens"' not in head or '"output_lens"' not in head:
        return None
    return read_vllm_bench(path).trace


def _jsonl(path: Path, what: str) -> list[dict]:
    if not path.is_file():
        raise TraceError(f"recorded run {path.parent}: {path.name} is missing ({what})")
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise TraceError(f"{path}: line {i} is not JSON ({e.msg})") from None
    if not rows:
        raise TraceError(f"{path}: no rows")
    return rows


def _columns(rows: list[dict], keys: tuple[str, ...], path: Path) -> dict[str, np.ndarray]:
    out = {}
    for key in keys:
        missing = next((i for i, r in enumerate(rows, 1) if r.get(key) is None), None)
        if missing is not None:
            raise TraceError(f"{path}: line {missing} has no {key!r} (needed columns: "
                             f"{', '.join(keys)})")
        out[key] = np.asarray([r[key] for r in rows], dtype=float)
    return out


def read_llmservingsim(folder: Path, workload: Path | None = None) -> RecordedRun:
    workload = workload or folder / "workload.jsonl"
    work_rows = _jsonl(workload, "the replayed requests")
    work = _columns(work_rows, ("input_toks", "output_toks", "arrival_time_ns"), workload)
    req_rows = _jsonl(folder / "requests.jsonl", "what the server measured per request")
    req = _columns(req_rows, ("input_toks", "output_toks", "queued_ts", "first_token_ts",
                              "last_token_ts"), folder / "requests.jsonl")
    n = len(work["input_toks"])
    if len(req["input_toks"]) != n:
        raise TraceError(f"recorded run {folder}: requests.jsonl has {len(req['input_toks'])} "
                         f"requests but {workload.name} has {n}; the record must cover the "
                         "whole workload")
    for key in ("input_toks", "output_toks"):
        bad = np.flatnonzero(req[key] != work[key])
        if len(bad):
            i = int(bad[0])
            raise TraceError(f"recorded run {folder}: request {i} has {key}={req[key][i]:.0f} "
                             f"in requests.jsonl but {work[key][i]:.0f} in {workload.name} "
                             f"({len(bad)} such rows); the record does not match its workload")
    ids = [str(r.get("request_id", f"req-{i}")) for i, r in enumerate(req_rows)]
    arrival = work["arrival_time_ns"] / 1e9
    meta = _read_json(folder / "meta.json") if (folder / "meta.json").is_file() else {}
    engine = dict(meta.get("engine_kwargs") or {})
    if "vllm_version" in meta:
        engine.setdefault("vllm_version", meta["vllm_version"])
    kv = meta.get("kv_cache") if isinstance(meta.get("kv_cache"), dict) else {}
    if kv.get("num_gpu_blocks"):
        engine.setdefault("kv_blocks", int(kv["num_gpu_blocks"]))
    for key in ("block_size", "enable_prefix_caching"):
        if kv.get(key) is not None:
            engine.setdefault(key, kv[key])
    engine.setdefault("enable_prefix_caching", True)
    hardware = meta.get("hardware") if isinstance(meta.get("hardware"), dict) else {}
    if hardware.get("device_name"):
        engine.setdefault("device_name", str(hardware["device_name"]))
    # what vLLM resolved (newer runs): its async scheduler and full-prompt admission gate
    resolved = meta.get("resolved_config") if isinstance(meta.get("resolved_config"), dict) \
        else {}
    sched = resolved.get("scheduler_config") if isinstance(
        resolved.get("scheduler_config"), dict) else {}
    for key in ("async_scheduling", "scheduler_reserve_full_isl"):
        if isinstance(sched.get(key), bool):
            engine.setdefault(key, sched[key])
    comp = resolved.get("compilation_config")       # CUDA-graph sizes and mode as resolved
    if isinstance(comp, dict):
        kept = {k: comp[k] for k in ("cudagraph_capture_sizes", "cudagraph_mode",
                                     "max_cudagraph_capture_size") if comp.get(k) is not None}
        if kept:
            engine.setdefault("compilation_config", kept)
    model_cfg = resolved.get("model_config")
    if isinstance(model_cfg, dict) and isinstance(model_cfg.get("enforce_eager"), bool):
        engine.setdefault("enforce_eager", model_cfg["enforce_eager"])     # no CUDA graphs
    par = resolved.get("parallel_config") if isinstance(
        resolved.get("parallel_config"), dict) else {}
    if isinstance(par.get("pipeline_parallel_size"), int):
        engine.setdefault("pipeline_parallel_size", par["pipeline_parallel_size"])
    measured = _measured(ids, arrival, work["input_toks"], work["output_toks"],
                         req["first_token_ts"] - req["queued_ts"],
                         req["last_token_ts"] - req["queued_ts"], None, folder)
    trace = _trace(measured, folder.name)
    if all(isinstance(r.get("input_tok_ids"), list) for r in work_rows):
        df = trace.df.copy()
        df["input_tok_ids"] = [r["input_tok_ids"] for r in work_rows]
        trace = Trace(df, name=folder.name)
    notes: list[str] = []
    ts = _timeseries(folder / "timeseries.csv", notes) \
        if (folder / "timeseries.csv").is_file() else None
    return RecordedRun(trace, measured, engine, ts, "llmservingsim", folder.name,
                       clock="queued", notes=notes)


def _timeseries(path: Path, notes: list[str]) -> pd.DataFrame:
    df = pd.read_csv(path)
    missing = [c for c in TIMESERIES_COLUMNS if c not in df.columns]
    if missing:
        raise TraceError(f"{path}: missing column(s) {', '.join(missing)} (needed: "
                         f"{', '.join(TIMESERIES_COLUMNS)})")
    # Some recorders write KV use 0 at every second (three of LLMServingSim's four published
    # runs do): with requests running that is a column left unfilled, not a measurement.
    if (df["kv_cache_pct"].fillna(0) == 0).all() and (df["running"] > 0).any():
        df["kv_cache_pct"] = float("nan")
        notes.append(f"{path.name}: KV-cache use is 0 at every second while requests run, "
                     "so it was not recorded; left blank in timeseries.csv and not plotted")
    return df


# -- vLLM benchmark_serving / vllm bench serve result JSON ------------------------------------
def _concurrency(value, path: Path) -> int:
    """The client's cap (`--max-concurrency`, replayed closed-loop: sim/client.py)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or value < 1:
        raise TraceError(f"{path}: max_concurrency {value!r} is not a whole number >= 1")
    return int(value)


def _rate(value, what: str, path: Path) -> float:
    if value is None or (isinstance(value, str) and value.lower() == "inf"):
        return math.inf
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TraceError(f"{path}: {what} {value!r} is not a number or 'inf'") from None
    if not v > 0:
        raise TraceError(f"{path}: {what} must be > 0, got {v}")
    return v


def _traffic(data: dict, traffic: dict, n: int, seed: int | None, path: Path, notes: list):
    """Send times rebuilt from the result's traffic keys (`traffic`, given flags, override
    them; a flag's rate or ramp-up replaces the result's rate and ramp), with a note saying
    how. A ramp-up the result shows but does not fully describe is one note, not an error."""
    own = {k: data.get(k) for k in ("request_rate", "burstiness", *RAMP_KEYS)}
    flagged = any(k in traffic for k in ("request_rate", *RAMP_KEYS))
    if flagged:
        own.update({k: None for k in ("request_rate", *RAMP_KEYS)})
    recorded = [k for k in RAMP_KEYS if own[k] is not None]
    shown = recorded or (["rps_change_events"] if data.get("rps_change_events") else [])
    if not flagged and shown and len(recorded) < len(RAMP_KEYS):
        notes.append(f"the result shows a ramp-up ({', '.join(shown)}) but does not record "
                     f"{', '.join(k for k in RAMP_KEYS if k not in recorded)}: arrivals rebuilt "
                     f"at request_rate {data.get('request_rate')} (give --ramp-up-strategy, "
                     "--ramp-up-start-rps, --ramp-up-end-rps)")
        own.update({k: None for k in RAMP_KEYS})
    own.update(traffic)
    where = "" if flagged else f"{path}: "
    try:
        ramp = ramp_up(own["ramp_up_strategy"], *(
            None if own[k] is None else _rate(own[k], k, path) for k in RAMP_KEYS[1:]))
    except TraceError as e:
        raise TraceError(f"{where}{e}") from None
    rate = _rate(own["request_rate"], "request_rate", path)
    burst = _rate(1.0 if own["burstiness"] is None else own["burstiness"], "burstiness", path)
    s = int(seed if seed is not None else data.get("seed", 0) or 0)
    if ramp is not None and math.isfinite(rate):
        raise TraceError(f"{where}a ramp-up with request_rate {rate}: vLLM bench refuses a "
                         "finite --request-rate with --ramp-up-strategy; drop one")
    how = (f"{ramp.strategy} ramp-up {ramp.start_rps:g} -> {ramp.end_rps:g} req/s"
           if ramp is not None else f"rate {rate}")
    notes.append(f"arrivals rebuilt: {how}, burstiness {burst}, seed {s}"
                 + (" (flags override the result)" if traffic else ""))
    return bench_arrivals(n, rate, burst, s, ramp)


def read_vllm_bench(path: Path, *, seed: int | None = None,
                    traffic: dict | None = None) -> RecordedRun:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise TraceError(f"{path}: not a vLLM bench result (a JSON object was expected)")
    missing = [k for k in BENCH_LISTS if not isinstance(data.get(k), list)]
    if missing:
        raise TraceError(f"{path}: missing per-request list(s) {', '.join(missing)}; run the "
                         "benchmark with --save-result (and --save-detailed on newer vLLM)")
    n = len(data["input_lens"])
    for key in (*BENCH_LISTS, "latencies", "start_times", "errors"):
        if isinstance(data.get(key), list) and len(data[key]) != n:
            raise TraceError(f"{path}: {key} has {len(data[key])} entries but input_lens has "
                             f"{n}; the result does not describe one set of requests")
    if n == 0:
        raise TraceError(f"{path}: no requests")
    if data.get("num_prompts") is not None and int(data["num_prompts"]) != n:
        raise TraceError(f"{path}: num_prompts is {data['num_prompts']} but {n} requests are "
                         "recorded; the result does not match its workload")
    failed = [i for i, e in enumerate(data.get("errors") or []) if e]
    if failed or any(o is None or o <= 0 for o in data["output_lens"]):
        i = failed[0] if failed else next(i for i, o in enumerate(data["output_lens"])
                                           if o is None or o <= 0)
        raise TraceError(f"{path}: request {i} failed or produced no tokens; a replay needs "
                         "every request to have completed")
    itls = [np.asarray(x, dtype=float) for x in data["itls"]]
    ttft = np.asarray(data["ttfts"], dtype=float)
    if isinstance(data.get("latencies"), list):
        e2e = np.asarray(data["latencies"], dtype=float)
    else:
        e2e = ttft + np.fromiter((x.sum() for x in itls), float, n)
    notes = [] if (chunked := _chunked(itls, data["output_lens"])) is None else [chunked]
    engine = {k: data[k] for k in ("model_id", "tokenizer_id") if k in data}
    cap = data.get("max_concurrency")
    cap = None if cap is None else _concurrency(cap, path)
    if isinstance(data.get("start_times"), list) and not traffic:
        start = np.asarray(data["start_times"], dtype=float)
        arrival = start - start.min()
        notes.append("arrivals: the recorded start_times" + (
            "" if cap is None else f", the sends after the client's max_concurrency {cap} "
            "held requests back, replayed as they are (--max-concurrency N caps them again)"))
    else:
        arrival = _traffic(data, traffic or {}, n, seed, path, notes)
        if cap is not None:             # the client's semaphore, replayed (sim/client.py)
            engine["max_concurrency"] = cap
            notes.append(f"max_concurrency {cap}: replayed closed-loop, each request sent when "
                         f"fewer than {cap} are in flight (TTFT and latency from the send)")
    ids = [f"bench-{i}" for i in range(n)]
    measured = _measured(ids, arrival, np.asarray(data["input_lens"], dtype=float),
                         np.asarray(data["output_lens"], dtype=float), ttft, e2e, itls, path)
    return RecordedRun(_trace(measured, path.stem), measured, engine, None, "vllm-bench",
                       path.stem, notes)


def _chunked(itls: list, output_lens: list) -> str | None:
    """A note when the stream sent several tokens per chunk (vLLM V0's multi-step scheduling
    streams once per --num-scheduler-steps window): fewer recorded gaps than tokens after the
    first, so the measured ITL times chunks, not the per-token steps seqsched simulates."""
    gaps = sum(len(x) for x in itls)
    tokens = int(sum(o - 1 for o in output_lens))
    if gaps >= tokens:
        return None
    per = f", about {tokens / gaps:.1f} tokens per streamed chunk" if gaps else ""
    return (f"{gaps} inter-token gaps recorded for {tokens} tokens after the first{per} (e.g. "
            "vLLM V0's multi-step scheduling): the measured ITL times chunks, not tokens; "
            "compare TPOT and end-to-end")


# -- shared -------------------------------------------------------------------------------
def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None


def _measured(ids, arrival, prompt, output, ttft, e2e, itls, where) -> pd.DataFrame:
    for name, v in (("prompt tokens", prompt), ("output tokens", output)):
        if np.any(v < 1) or np.any(v != np.round(v)):
            raise TraceError(f"{where}: {name} must be whole numbers >= 1")
    bad = np.flatnonzero(~np.isfinite(ttft) | ~np.isfinite(e2e) | (ttft < 0) | (e2e < ttft))
    if len(bad):
        raise TraceError(f"{where}: request {int(bad[0])} has TTFT {ttft[bad[0]]} and "
                         f"end-to-end {e2e[bad[0]]} s; times must be finite, TTFT >= 0 and "
                         "end-to-end >= TTFT")
    return pd.DataFrame({"id": ids, "arrival_s": arrival, "prompt_tokens": prompt.astype(np.int64),
                         "output_tokens": output.astype(np.int64), "ttft_s": ttft, "e2e_s": e2e,
                         "itls": itls if itls is not None else [None] * len(ids)})


def _trace(measured: pd.DataFrame, name: str) -> Trace:
    return Trace(measured[["id", "arrival_s", "prompt_tokens", "output_tokens"]].copy(),
                 name=name)
