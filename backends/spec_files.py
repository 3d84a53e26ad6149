"""GPU specs and model shapes from files: a GPU TOML (`--gpu my_gpu.toml`) and a Hugging Face
`config.json` (`--model path/to/config.json` or the model folder holding it).

GPU TOML keys (the datasheet's figures):

    name = "my-gpu"
    peak_tflops = 312.0        # dense FP16/BF16 tensor-core TFLOP/s
    bandwidth_gbs = 2039.0     # memory bandwidth, GB/s
    memory_gb = 80.0           # device memory, GB
    source = "vendor datasheet"                    # optional
    interconnect_gbs = 300.0   # optional: GPU-to-GPU GB/s per direction (for --tp)
    interconnect = "NVLink 3"  # optional
    allreduce_latency_us = 5.0 # optional
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from seqsched.backends.specs import (GPU_ALIASES, GPUS, MODEL_ALIASES, MODELS, GPUSpec,
                                     ModelSpec, builtin_gpu_name, builtin_model_name,
                                     get_gpu, get_model)
from seqsched.common.errors import UserError

GPU_KEYS = {"peak_tflops", "bandwidth_gbs", "memory_gb"}
GPU_OPTIONAL = {"name", "source", "interconnect_gbs", "interconnect", "allreduce_latency_us"}
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float8_e4m3fn": 1}


def gpu_from_toml(path: str | Path) -> GPUSpec:
    path = Path(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"GPU file {path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"GPU file {path}: not valid TOML ({e})") from None
    missing = sorted(GPU_KEYS - set(spec))
    unknown = sorted(set(spec) - GPU_KEYS - GPU_OPTIONAL)
    if missing or unknown:
        what = (f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}")
        raise UserError(f"GPU file {path}: {what}; keys: {', '.join(sorted(GPU_KEYS))} "
                        f"(+ optional {', '.join(sorted(GPU_OPTIONAL))})")
    nums = {}
    for key in GPU_KEYS | {"interconnect_gbs", "allreduce_latency_us"}:
        if key in spec:
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 \
                    or (key in GPU_KEYS and value <= 0):
                raise UserError(f"GPU file {path}: {key} must be a positive number, got "
                                f"{value!r}")
            nums[key] = float(value)
    return GPUSpec(str(spec.get("name", path.stem)), nums["peak_tflops"], nums["bandwidth_gbs"],
                   nums["memory_gb"], str(spec.get("source", str(path))),
                   nums.get("interconnect_gbs", 0.0), str(spec.get("interconnect", "")),
                   nums.get("allreduce_latency_us", 10.0))


def _int(cfg: dict, path, *keys, default=None) -> int:
    for key in keys:
        if key in cfg and cfg[key] is not None:
            value = cfg[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UserError(f"{path}: {key} must be a whole number, got {value!r}")
            return value
    if default is None:
        raise UserError(f"{path}: no {' / '.join(keys)}; is this a decoder-only model's "
                        "Hugging Face config.json?")
    return default


# model types whose vLLM attention normalises q and k per head (vllm/model_executor/models/
# qwen3.py and qwen3_moe.py: `self.q_norm` / `self.k_norm`)
QK_NORM_TYPES = {"qwen3", "qwen3_moe"}


def model_from_hf_config(path: str | Path) -> ModelSpec:
    """A LLaMA-family shape from a Hugging Face config.json (LLaMA, Mistral, Mixtral, Qwen2/3
    field names; `text_config` of a multimodal wrapper is read when present)."""
    given = path
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if re.fullmatch(r"[\w.-]+/[\w.-]+", str(given)) and not str(given).endswith(".json"):
            raise UserError(f"model {given}: not a built-in shape and no such folder here; "
                            f"download its config.json (huggingface.co/{given}/blob/main/"
                            "config.json) and pass --model PATH/config.json, or name a built-in "
                            "model (seqsched simulate --help lists them)") from None
        raise UserError(f"model {path}: no such file; give a built-in model name or a Hugging "
                        "Face config.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"model {path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise UserError(f"model {path}: not a config object")
    cfg = cfg.get("text_config", cfg) if isinstance(cfg.get("text_config"), dict) else cfg
    d = _int(cfg, path, "hidden_size", "d_model", "n_embd")
    heads = _int(cfg, path, "num_attention_heads", "n_head")
    dtype = str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16")
    if dtype not in DTYPE_BYTES:
        raise UserError(f"model {path}: torch_dtype {dtype!r} unknown; one of "
                        f"{', '.join(DTYPE_BYTES)}")
    experts = _int(cfg, path, "num_local_experts", "num_experts", default=0)
    ff = _int(cfg, path, "moe_intermediate_size" if experts and "moe_intermediate_size" in cfg
              else "intermediate_size", "ffn_dim", "n_inner")
    return ModelSpec(
        name=str(cfg.get("_name_or_path") or path.parent.name or path.stem),
        n_layers=_int(cfg, path, "num_hidden_layers", "n_layer"), d_model=d, n_heads=heads,
        n_kv_heads=_int(cfg, path, "num_key_value_heads", default=heads), d_ff=ff,
        vocab_size=_int(cfg, path, "vocab_size"),
        max_position=_int(cfg, path, "max_position_embeddings", default=4096),
        dtype_bytes=DTYPE_BYTES[dtype], source=str(path),
        head_size=_int(cfg, path, "head_dim", default=0), n_experts=experts,
        experts_per_token=_int(cfg, path, "num_experts_per_tok", default=2 if experts else 0),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        qk_norm=str(cfg.get("model_type", "")) in QK_NORM_TYPES)


def resolve_gpu(name: str) -> GPUSpec:
    """A built-in GPU by name, or a GPU TOML file."""
    return gpu_from_toml(name) if str(name).endswith(".toml") else get_gpu(name)


def respelled(name: str | None, kind: str) -> str | None:
    """The built-in name of a GPU (`kind` "gpu") or model ("model") typed another way than
    any name accepted as it is ("h100-sxm", "meta-llama/Llama-3.1-8B-Instruct"); None for a
    name accepted as it is, a file or folder, or no built-in one."""
    if name is None or str(name).endswith((".toml", ".json")) or Path(name).is_dir():
        return None
    names, aliases, lookup = ((GPUS, GPU_ALIASES, builtin_gpu_name) if kind == "gpu"
                              else (MODELS, MODEL_ALIASES, builtin_model_name))
    return None if name in names or name in aliases else lookup(name)


def resolve_model(name: str) -> ModelSpec:
    """A built-in model by name (or a Hugging Face id of one: `builtin_model_name`), or a
    Hugging Face config.json / the folder holding one."""
    if str(name).endswith(".json") or Path(name).is_dir() \
            or ("/" in str(name) and builtin_model_name(name) is None):
        return model_from_hf_config(name)
    return get_model(name)


__all__ = ["gpu_from_toml", "model_from_hf_config", "resolve_gpu", "resolve_model", "respelled"]
