"""A run's cost model and how it is named: `--profile` or the built-in kernel profile of its
GPU x model x TP, else the roofline; vLLM's expert parallelism on an MoE profile.

    cost = build_cost_model(config)      # config: app.run.RunConfig
"""

from __future__ import annotations

from seqsched.app.serving_setup import decode_config
from seqsched.backends.efficiency import roofline_measurements
from seqsched.backends.presets import get_preset
from seqsched.backends.roofline import RooflineCostModel
from seqsched.backends.spec_files import resolve_gpu, resolve_model


def cost_profile_name(config) -> str | None:
    """The profile a run uses: `--profile` (path or built-in name; "roofline" for none), else
    the built-in kernel profile measured on the run's GPU x model x TP (not under a preset)."""
    from seqsched.backends.profile_registry import match_builtin
    if config.profile == "roofline":
        return None
    if config.profile is not None:
        return config.profile
    if config.backend is None:
        return match_builtin(config.gpu, config.model, config.tp)
    return None


def ep_group(config) -> int:
    """The data-parallel ranks an MoE's experts are split over with `expert_parallel`: the
    lockstep group (vLLM's data_parallel_size), else all replicas; 1 without it."""
    if not config.expert_parallel or not resolve_model(config.model).n_experts:
        return 1
    return config.dp_lockstep if config.dp_lockstep > 1 else config.replicas


def build_cost_model(config):
    name, model = cost_profile_name(config), resolve_model(config.model)
    if name is not None:
        from seqsched.backends.profile_registry import check_match, load_cost_profile
        cost = load_cost_profile(name, model)
        check_match(cost, config.gpu, config.model, config.tp)
        if getattr(cost, "moe", None) is not None and config.expert_parallel:
            # experts over the DP group x TP GPUs, each MoE layer gathering the group's tokens
            # (backends/moe_profile.py; in DP lockstep the group's own padded counts)
            from seqsched.backends.moe_profile import expert_parallel
            gpu, group = resolve_gpu(config.gpu), ep_group(config)
            cost.moe = expert_parallel(cost.moe, group * config.tp, group,
                                       gpu.interconnect_gbs, gpu.allreduce_latency_us,
                                       model.d_model, model.dtype_bytes)
        return cost
    # measured kernel efficiencies and all-reduce (backends/efficiency.py); a preset keeps the
    # datasheet figures and ring all-reduce its overheads were derived with
    measured = roofline_measurements(config.gpu, config.tp) if config.backend is None else {}
    return RooflineCostModel(resolve_gpu(config.gpu), model, **measured,
                             iteration_overhead_s=config.iteration_overhead_s or 0.0,
                             token_overhead_s=config.token_overhead_s or 0.0,
                             kv_append_copy=bool(config.kv_append_copy), tp=config.tp)


def describe_backend(config) -> str:
    """`GPU / model [/ TPn]` and the cost model, for the terminal and report.md; a
    disaggregated run whose decode side differs names both sides."""
    config = config.resolved()
    text = _describe_side(config)
    if config.prefill_replicas:
        decode = _describe_side(decode_config(config))
        if decode != text:
            return f"prefill: {text}; decode: {decode}"
    return text


def _describe_side(config) -> str:
    if config.backend is not None and config.profile is None:
        preset = get_preset(config.backend)
        if (config.gpu, config.model) == (preset.gpu, preset.model):
            return config.backend
        # flags overrode the preset's GPU/model: name what really ran
        return (f"{config.gpu} / {config.model}: the {config.backend} preset's overheads, "
                f"with --gpu/--model overriding its {preset.gpu} / {preset.model}")
    base = f"{config.gpu} / {config.model}" + (f" / TP{config.tp}" if config.tp > 1 else "") \
        + (f" / PP{config.pp}" if config.pp > 1 else "")
    name = cost_profile_name(config)
    if name is None:
        return f"{base}, roofline"
    from seqsched.backends.profile_registry import builtin_index
    kind = "built-in kernel profile" if name in builtin_index() else "profile"
    return f"{base}, {kind} {name}"
