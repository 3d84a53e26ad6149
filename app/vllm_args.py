"""vLLM's own engine option names, so the options of a `vllm serve` command paste as they are.

    add_vllm_options(parser)                     # simulate / compare / sweep / validate
    params, fields = vllm_settings(args, base)   # policy parameters + RunConfig fields

`--gpu-memory-utilization` is an alias of `--memory-fraction` (declared beside it). Values
given here fill the continuous policies' parameters (`max_num_seqs`, `max_batched_tokens`,
`chunked_prefill`) unless a policy spec sets them itself; the rest are RunConfig fields. A
recorded run's metadata (`validate --measured`) comes in as `base`: flags override it.
"""

from __future__ import annotations

import argparse
import re
import sys

from seqsched.common.errors import UserError


# vLLM engine key -> the continuous policies' parameter
POLICY_KEYS = {"max_num_seqs": "max_num_seqs", "max_num_batched_tokens": "max_batched_tokens",
               "enable_chunked_prefill": "chunked_prefill",
               "scheduler_reserve_full_isl": "reserve_full_isl",
               "async_scheduling": "async_scheduling"}
# A recorded run's scheduler switches its metadata does not state: vLLM's defaults from the
# version it names on (vllm/config/scheduler.py of v0.19.0, commit 2a69949bd:
# scheduler_reserve_full_isl = True; async_scheduling None -> True in VllmConfig.__post_init__
# for the uniproc and multiproc executors without incompatible speculative decoding). Older or
# unknown versions are not guessed: seqsched's defaults (both off) apply.
VERSION_DEFAULTS = (((0, 19, 0), {"scheduler_reserve_full_isl": True,
                                  "async_scheduling": True}),)
# vLLM engine key -> RunConfig field
CONFIG_KEYS = {"block_size": "block_size", "max_model_len": "max_model_len",
               "kv_sizing": "kv_sizing",
               "gpu_memory_utilization": "memory_fraction", "kv_blocks": "kv_blocks",
               "num_gpu_blocks_override": "kv_blocks", "enforce_eager": "enforce_eager",
               "cudagraph_padding": "cudagraph_padding",
               "compilation_config": "compilation_config",   # a recorded run's, not a flag
               "max_concurrency": "max_concurrency",   # vllm bench's client (sim/client.py)
               "enable_expert_parallel": "expert_parallel"}
ENGINE_KEYS = (*POLICY_KEYS, *CONFIG_KEYS, "tensor_parallel_size", "enable_prefix_caching",
               "pipeline_parallel_size", "data_parallel_size")
_NOTED: set[str] = set()


def human_int(text: str) -> int:
    """vLLM's human-readable integers: 32k = 32,000, 32K = 32,768, 1M, 1G."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (e.g. 8192, 32k, 32K)")
    number, suffix = m.groups()
    mult = {"": 1, "k": 10 ** 3, "m": 10 ** 6, "g": 10 ** 9,
            "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}[suffix]
    value = float(number) * mult
    if value != int(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(value)


def add_vllm_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "vLLM engine options (as `vllm serve` takes them; continuous policies)")
    g.add_argument("--max-num-seqs", type=human_int, default=None, metavar="N",
                   help="most running requests (vllm serve default: 1024 on >= 70 GiB GPUs "
                        "other than A100, else 256)")
    g.add_argument("--max-num-batched-tokens", type=human_int, default=None, metavar="N",
                   help="token budget per iteration (default 8192 on >= 70 GiB GPUs other "
                        "than A100, else 2048; max-model-len without chunked prefill)")
    g.add_argument("--enable-chunked-prefill", action=argparse.BooleanOptionalAction,
                   default=None, help="split prompts across iterations (vLLM V1 default: on)")
    g.add_argument("--scheduler-reserve-full-isl", action=argparse.BooleanOptionalAction,
                   default=None, help="admit a waiting request only if its whole prompt's KV "
                   "blocks are free, not just its first chunk's (vLLM 0.19 default: on; "
                   "seqsched's default: off)")
    g.add_argument("--async-scheduling", action=argparse.BooleanOptionalAction, default=None,
                   help="vLLM's async scheduler: step n+1 is planned while step n runs, so an "
                   "arrival is admitted and a finished request's slot and KV freed one "
                   "iteration later (vLLM 0.19 default: on; seqsched's default: off)")
    g.add_argument("--vllm-version", default=None, metavar="V",
                   help="the scheduler defaults of vLLM V where no flag sets them: from 0.19 "
                   "async scheduling and full-prompt admission on (validate --measured: "
                   "overrides the version a run records; default: the run's, else seqsched's "
                   "own, both off)")
    g.add_argument("--enforce-eager", action=argparse.BooleanOptionalAction, default=None,
                   help="vLLM without CUDA graphs: no capture sizes, so a DP lockstep group "
                   "never pads its ranks (vllm/config/vllm.py:1024; default: off)")
    g.add_argument("--cudagraph-padding", action=argparse.BooleanOptionalAction, default=None,
                   help="time each step as vLLM's CUDA graphs run it on one GPU: a step of at "
                   "most the largest capture size runs its GEMMs over the next capture size's "
                   "token count (backends/cuda_graphs.py; validate --measured: on unless "
                   "--enforce-eager; elsewhere seqsched's default: off)")
    g.add_argument("--tensor-parallel-size", "-tp", type=int, default=None, metavar="N",
                   help="tensor-parallel GPUs per replica (vLLM's name for --tp)")
    g.add_argument("--pipeline-parallel-size", "-pp", type=int, default=None, metavar="N",
                   help="pipeline stages per replica, each of --tp GPUs (layers, weights and "
                   "KV split; PP micro-batches in flight without async scheduling, "
                   "serialised with it, as vLLM 0.19; default 1)")
    g.add_argument("--data-parallel-size", "-dp", type=int, default=None, metavar="N",
                   help="N data-parallel engines behind vLLM's DP load balancer: --replicas N "
                   "--router vllm-dp, and for an MoE model its ranks step in lockstep "
                   "(--dp-lockstep N) as vLLM's DP engines do (default 1)")
    g.add_argument("--enable-expert-parallel", action=argparse.BooleanOptionalAction,
                   default=None, help="an MoE model's experts split over the DP x TP GPUs "
                   "(whole experts per GPU, so more KV room; on a kernel profile's MoE table, "
                   "each layer gathers the DP ranks' tokens); default off")
    g.add_argument("--block-size", type=int, default=None, metavar="N",
                   help="KV-cache block size in tokens (default 16)")
    g.add_argument("--max-model-len", type=human_int, default=None, metavar="N",
                   help="longest prompt + output a request may have (default: the model's)")
    g.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction,
                   default=None, help="vLLM-style automatic prefix caching (continuous "
                   "policies; needs token ids, Mooncake hash_ids, session_id or prefix_group "
                   "in the trace; seqsched's default: off)")
    g.add_argument("--no-prefix-caching", dest="enable_prefix_caching", action="store_const",
                   const=False, default=None, help="no prefix caching (the default)")
    g.add_argument("--kv-blocks", "--num-gpu-blocks-override", dest="kv_blocks", type=int,
                   default=None, metavar="N",
                   help="pin the KV cache to N blocks (vLLM logs '# GPU blocks: N'); default: "
                        "memory x gpu-memory-utilization - weights - activation peak")
    g.add_argument("--kv-sizing", choices=["vllm", "weights"], default=None,
                   help="vllm (default): reserve vLLM's profiled activation peak; weights: "
                        "memory x fraction - weights only (seqsched before vLLM sizing)")
    g = parser.add_argument_group("vLLM bench client (as `vllm bench serve` takes it)")
    g.add_argument("--max-concurrency", type=int, default=None, metavar="N",
                   help="closed loop: at most N requests in flight; a request that arrives while "
                        "N are unfinished is sent, in arrival order, when one finishes; TTFT and "
                        "latency count from the send (default: no cap; validate --measured: the "
                        "vLLM bench result's own max_concurrency)")
    add_vllm_server_options(parser)


# `vllm serve` options that change nothing simulated (HTTP server, logging, model loading,
# chat templates): accepted, so that a pasted command runs, and named in one note line.
# Value: how many values the option takes (argparse nargs; 0: a switch).
SERVER_ONLY = {"--host": None, "--port": None, "--uds": None, "--uvicorn-log-level": None,
               "--api-key": None, "--served-model-name": "+", "--disable-log-requests": 0,
               "--enable-log-requests": 0, "--disable-log-stats": 0, "--trust-remote-code": 0,
               "--download-dir": None, "--load-format": None, "--tokenizer-mode": None,
               "--revision": None, "--hf-token": "?", "--chat-template": None,
               "--enable-auto-tool-choice": 0, "--tool-call-parser": None,
               "--disable-uvicorn-access-log": 0, "--disable-fastapi-docs": 0,
               "--max-log-len": None, "--allowed-origins": None, "--root-path": None,
               "--generation-config": None, "--response-role": None,
               "--return-tokens-as-token-ids": 0, "--enable-prompt-tokens-details": 0,
               "--dtype": None}
# 16-bit weights, as every built-in shape and a config.json's torch_dtype say
SAME_DTYPES = ("auto", "half", "float16", "bfloat16", "fp16", "bf16")
# `vllm serve` options that change what would be measured in ways not modelled here: refused
# with what to do instead
NOT_MODELLED = {
    "--kv-cache-dtype": "a quantised KV cache is not modelled (KV is sized and timed at the "
                        "model's dtype): drop it, or pin the KV cache with --kv-blocks N from "
                        "vLLM's log ('# GPU blocks: N')",
    "--quantization": "quantised weights are not modelled: drop it, or give the model's "
                      "config.json with --model (its torch_dtype sets the weight bytes)",
    "--speculative-config": "speculative decoding is not modelled: drop it",
    "--cpu-offload-gb": "weight offloading is not modelled: drop it",
    "--scheduling-policy": "give seqsched's --policy (fcfs, sjf, srpt, ...) instead",
    "--num-scheduler-steps": "multi-step scheduling is not modelled: drop it",
}

# values of those that mean vLLM's own default, so they change nothing either
VLLM_DEFAULT = {"--kv-cache-dtype": SAME_DTYPES, "--scheduling-policy": ("fcfs",),
                "--num-scheduler-steps": ("1",),
                "--cpu-offload-gb": ("0",)}


def add_vllm_server_options(parser: argparse.ArgumentParser) -> None:
    """The `vllm serve` options that are accepted without effect (`SERVER_ONLY`) or refused
    with a fix (`NOT_MODELLED`), hidden from --help; an option the parser already has (the
    live `validate --dtype`) keeps its own meaning."""
    have = set(parser._option_string_actions)
    for flag, nargs in {**SERVER_ONLY, **{f: None for f in NOT_MODELLED}}.items():
        if flag not in have:
            dest = "vllm_" + flag[2:].replace("-", "_")
            kw = {"action": "store_true"} if nargs == 0 else {"nargs": nargs}
            parser.add_argument(flag, dest=dest, default=None, help=argparse.SUPPRESS, **kw)


def check_server_options(args) -> None:
    """One note naming the `vllm serve` options that change nothing here; a UserError for one
    whose effect is not modelled."""
    def value(flag):
        return getattr(args, "vllm_" + flag[2:].replace("-", "_"), None)

    for flag, fix in NOT_MODELLED.items():
        if value(flag) is not None and str(value(flag)).lower() not in VLLM_DEFAULT.get(flag, ()):
            raise UserError(f"vllm serve's {flag} {value(flag)}: {fix}")
    dtype = value("--dtype")
    if dtype is not None and str(dtype).lower() not in SAME_DTYPES:
        raise UserError(f"--dtype {dtype}: the built-in shapes are 16-bit; drop --dtype, or give "
                        "a config.json whose torch_dtype is the one you serve with --model")
    ignored = [f for f in [*SERVER_ONLY, *NOT_MODELLED] if value(f) not in (None, False)]
    if ignored:
        note("server-only", f"ignored {', '.join(ignored)}: vllm serve options that change "
             "nothing simulated")


def given(args) -> dict:
    """The vLLM engine options given on the command line (engine key -> value)."""
    out = {k: getattr(args, k, None) for k in ENGINE_KEYS if k in vars(args)}
    return {k: v for k, v in out.items() if v is not None}


def version_defaults(engine: dict) -> dict:
    """`engine` (a recorded run's metadata) plus the scheduler switches its `vllm_version`
    implies where the metadata does not record them (`VERSION_DEFAULTS`)."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", str(engine.get("vllm_version") or ""))
    if not m:
        return dict(engine)
    version = tuple(int(x or 0) for x in m.groups())
    out = dict(engine)
    for since, values in VERSION_DEFAULTS:
        if version >= since:
            for key, value in values.items():
                out.setdefault(key, value)
    return out


def vllm_settings(args, base: dict | None = None, *, memory_default: float = 0.9
                  ) -> tuple[dict, dict]:
    """(policy parameters, RunConfig fields) from the engine settings `base` (a recorded run's
    metadata, with its vLLM version's scheduler defaults) overridden by the options on the
    command line."""
    check_server_options(args)
    base = dict(base or {})
    if getattr(args, "vllm_version", None):        # --vllm-version: that version's defaults
        base["vllm_version"] = args.vllm_version
    engine = {k: v for k, v in version_defaults(base).items()
              if k in ENGINE_KEYS and v is not None}
    engine.update(given(args))
    memory = getattr(args, "memory_fraction", None)
    if memory is not None and (memory != memory_default or "gpu_memory_utilization"
                               not in engine):
        engine["gpu_memory_utilization"] = memory
    params = {POLICY_KEYS[k]: engine[k] for k in POLICY_KEYS if k in engine}
    fields = {CONFIG_KEYS[k]: engine[k] for k in CONFIG_KEYS if k in engine}
    if engine.get("tensor_parallel_size") is not None:
        fields["tp"] = int(engine["tensor_parallel_size"])
    if engine.get("pipeline_parallel_size") is not None:
        fields["pp"] = int(engine["pipeline_parallel_size"])
    if engine.get("enable_prefix_caching") is not None:
        fields["prefix_caching"] = bool(engine["enable_prefix_caching"])
    if engine.get("data_parallel_size") is not None:
        fields["data_parallel_size"] = engine["data_parallel_size"]    # apply_to_config
    return params, fields


def _data_parallel(config, dp) -> dict:
    """RunConfig fields for vLLM data parallelism (`data_parallel_size` D): D replicas behind
    vLLM's own DP load balancer (`vllm-dp`, sim/dp_router.py: the fewest waiting x 4 + running
    requests, counts refreshed every 100 ms), unless the user chose another router; an MoE
    model's D ranks step in lockstep (vLLM's DPEngineCoreProc, MoE only; sim/lockstep.py).
    One error where --replicas says otherwise."""
    from seqsched.backends.spec_files import resolve_model

    if dp is None:
        return {}
    dp = int(dp)
    if dp < 1:
        raise UserError(f"--data-parallel-size must be >= 1, got {dp}")
    if dp == 1:
        return {}
    if config.replicas not in (1, dp):
        raise UserError(f"--data-parallel-size {dp} and --replicas {config.replicas} disagree: "
                        "give one of them (data parallelism is N replicas)")
    fields = {"replicas": dp}
    if config.router in ("round-robin", "vllm-dp"):       # a router the user chose stays
        fields["router"] = "vllm-dp"
    if resolve_model(config.model).n_experts > 0:
        fields["dp_lockstep"] = dp
    return fields


def apply_to_config(config, params: dict, fields: dict):
    """A RunConfig with the vLLM settings: the policy's own parameters win (continuous
    policies only take them); `data_parallel_size` D becomes D replicas (`_data_parallel`)."""
    import dataclasses

    from seqsched.common.params import init_params
    from seqsched.policies import POLICIES

    known = init_params(POLICIES[config.policy]) if config.policy in POLICIES else set()
    merged = dict(config.policy_params)
    for key, value in params.items():
        if key in known:
            merged.setdefault(key, value)
    fields = dict(fields)
    fields.update(_data_parallel(config, fields.pop("data_parallel_size", None)))
    return dataclasses.replace(config, policy_params=merged, **fields)


def note(key: str, text: str) -> None:
    if key not in _NOTED:
        _NOTED.add(key)
        print(f"seqsched: note: {text}", file=sys.stderr)
