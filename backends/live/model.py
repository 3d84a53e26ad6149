"""Build the served model: a LLaMA-family `LlamaForCausalLM` either from a local Hugging Face
folder (real weights, optional tokenizer) or from one of the core's named shapes
(`backends.specs.MODELS`) with random weights, which is all timing work needs (the time of a
forward pass does not depend on the weight values).

Every bad input raises `sim.errors.UserError` with one line naming the problem and the fix:
unknown shape, missing folder, unknown dtype, CUDA asked for but not available, weights that do
not fit in the device's free memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqsched.backends.specs import MODELS, ModelSpec
from seqsched.common.errors import UserError

DTYPES = {"float16": "float16", "fp16": "float16", "half": "float16",
          "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float32": "float32", "fp32": "float32", "float": "float32",
          "float64": "float64", "fp64": "float64", "double": "float64"}
DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4, "float64": 8}
ATTN_IMPLEMENTATIONS = ("eager", "sdpa")


@dataclass
class LoadedModel:
    """The served model and what the executor needs to know about it."""

    model: Any                      # transformers LlamaForCausalLM (eval mode, no grad)
    name: str                       # shape name or folder name
    source: str                     # "shape" or "folder"
    device: Any                     # torch.device
    dtype: Any                      # torch.dtype
    dtype_name: str
    attn_implementation: str
    tokenizer: Any = None           # only for folders that ship one
    eos_token_id: int | None = None
    pad_token_id: int = 0
    shape: dict = field(default_factory=dict)   # n_layers, d_model, ... (profile metadata)

    @property
    def vocab_size(self) -> int:
        return int(self.shape["vocab_size"])

    @property
    def n_layers(self) -> int:
        return int(self.shape["n_layers"])


def resolve_dtype_name(dtype: str) -> str:
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise UserError(f"unknown dtype {dtype!r}; choose one of float16, bfloat16, float32, "
                        "float64") from None


def resolve_device(device: str):
    import torch

    dev = str(device).lower()
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r} asked for but CUDA is not available (torch "
                            f"{torch.__version__}); use --device cpu or install a CUDA build "
                            "of torch on a GPU machine")
        d = torch.device(dev)
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise UserError(f"device {device!r}: only {torch.cuda.device_count()} CUDA "
                            "device(s) visible; pick cuda:0..")
        return d
    if dev != "cpu":
        raise UserError(f"unknown device {device!r}; use cpu or cuda (cuda:N)")
    return torch.device("cpu")


def llama_config(spec: ModelSpec, attn_implementation: str = "eager"):
    """The `LlamaConfig` of a core model shape (untied LM head, as LLaMA)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=spec.vocab_size, hidden_size=spec.d_model,
                       intermediate_size=spec.d_ff, num_hidden_layers=spec.n_layers,
                       num_attention_heads=spec.n_heads, num_key_value_heads=spec.n_kv_heads,
                       max_position_embeddings=spec.max_position, tie_word_embeddings=False,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2, rms_norm_eps=1e-6,
                       attn_implementation=attn_implementation)


def spec_shape(spec: ModelSpec) -> dict:
    return {"name": spec.name, "n_layers": spec.n_layers, "d_model": spec.d_model,
            "n_heads": spec.n_heads, "n_kv_heads": spec.n_kv_heads, "d_ff": spec.d_ff,
            "vocab_size": spec.vocab_size, "max_position": spec.max_position}


def config_shape(cfg, name: str) -> dict:
    return {"name": name, "n_layers": cfg.num_hidden_layers, "d_model": cfg.hidden_size,
            "n_heads": cfg.num_attention_heads,
            "n_kv_heads": getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads,
            "d_ff": cfg.intermediate_size, "vocab_size": cfg.vocab_size,
            "max_position": cfg.max_position_embeddings}


def shape_params(shape: dict) -> int:
    """Parameter count of a LLaMA shape dict (embedding + layers + norm + untied head)."""
    d, ff, v = shape["d_model"], shape["d_ff"], shape["vocab_size"]
    kv = shape["n_kv_heads"] * (d // shape["n_heads"])
    layer = d * (d + 2 * kv) + d * d + 3 * d * ff + 2 * d
    return 2 * v * d + shape["n_layers"] * layer + d


def free_memory_bytes(device) -> int:
    import torch

    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def check_fits(weight_bytes: int, device, what: str, fraction: float = 0.9) -> None:
    free = free_memory_bytes(device)
    if weight_bytes > fraction * free:
        raise UserError(f"model {what} needs {weight_bytes / 2**30:.1f} GiB for its weights but "
                        f"{device} has {free / 2**30:.1f} GiB free; use a smaller model shape, a "
                        "2-byte dtype (--dtype float16) or a bigger device")


def load_model(model: str, device: str = "cpu", dtype: str = "float16", *,
               attn_implementation: str = "eager", seed: int = 0) -> LoadedModel:
    """Load `model`: an existing local HF folder, or the name of a core model shape (random
    weights, seeded). float16 on CPU is slow; tests use float32/float64 on the `tiny` shape."""
    import torch

    if attn_implementation not in ATTN_IMPLEMENTATIONS:
        raise UserError(f"unknown attention implementation {attn_implementation!r}; choose "
                        f"{' or '.join(ATTN_IMPLEMENTATIONS)}")
    dtype_name = resolve_dtype_name(dtype)
    torch_dtype = getattr(torch, dtype_name)
    dev = resolve_device(device)
    path = Path(model).expanduser()
    if path.is_dir():
        return _load_folder(path, dev, dtype_name, torch_dtype, attn_implementation)
    if model in MODELS:
        return _build_shape(MODELS[model], dev, dtype_name, torch_dtype, attn_implementation,
                            seed)
    if os.sep in model or model.startswith(".") or path.suffix:
        raise UserError(f"model folder {model!r} not found; give an existing Hugging Face model "
                        f"folder or one of the shapes {', '.join(MODELS)}")
    raise UserError(f"unknown model {model!r}; give a local Hugging Face folder or one of the "
                    f"shapes {', '.join(MODELS)}")


def _build_shape(spec: ModelSpec, dev, dtype_name, torch_dtype, attn, seed) -> LoadedModel:
    import torch
    from transformers import AutoModelForCausalLM

    shape = spec_shape(spec)
    check_fits(shape_params(shape) * DTYPE_BYTES[dtype_name], dev, spec.name)
    cfg = llama_config(spec, attn)
    torch.manual_seed(seed)
    with torch.device(dev):
        m = AutoModelForCausalLM.from_config(cfg, dtype=torch_dtype, attn_implementation=attn)
    m.to(dev).eval().requires_grad_(False)      # a no-op when the device context was honoured
    return LoadedModel(m, spec.name, "shape", dev, torch_dtype, dtype_name, attn,
                       eos_token_id=cfg.eos_token_id, pad_token_id=0, shape=shape)


def _load_folder(path: Path, dev, dtype_name, torch_dtype, attn) -> LoadedModel:
    from transformers import AutoConfig, AutoModelForCausalLM

    if not (path / "config.json").is_file():
        raise UserError(f"{path}: no config.json; give a Hugging Face model folder "
                        "(config.json + weights)")
    try:
        cfg = AutoConfig.from_pretrained(path)
    except Exception as e:  # noqa: BLE001 - transformers raises many kinds
        raise UserError(f"{path}: cannot read config.json ({e}); fix the folder") from None
    shape = config_shape(cfg, path.name)
    check_fits(shape_params(shape) * DTYPE_BYTES[dtype_name], dev, str(path))
    from seqsched.predictors._quiet import quiet_transformers
    try:
        with quiet_transformers():                   # no load-time progress bar in CLI output
            m = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype,
                                                     attn_implementation=attn, device_map=None)
    except OSError as e:
        raise UserError(f"{path}: cannot load the weights ({e}); the folder needs "
                        "model.safetensors or pytorch_model.bin") from None
    m.to(dev).eval().requires_grad_(False)
    tok = None
    try:
        from transformers import AutoTokenizer
        tok = AutoTokenizer.from_pretrained(path)
    except Exception:  # noqa: BLE001 - a folder without tokenizer is fine (forced lengths)
        tok = None
    eos = cfg.eos_token_id
    if isinstance(eos, (list, tuple)):
        eos = eos[0] if eos else None
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    return LoadedModel(m, path.name, "folder", dev, torch_dtype, dtype_name, attn,
                       tokenizer=tok, eos_token_id=eos, pad_token_id=int(pad), shape=shape)


__all__ = ["LoadedModel", "load_model", "llama_config", "resolve_device", "resolve_dtype_name",
           "spec_shape", "shape_params", "DTYPE_BYTES"]
