"""Built-in GPU and model specs. Every figure cites its source.

GPU figures are the vendor datasheets' dense (no sparsity) FP16/BF16 tensor-core peak and HBM
bandwidth; memory is the usable capacity in GiB-as-sold (decimal GB x 1e9 bytes). Model shapes
come from each model's published `config.json` (Hugging Face model cards) or paper.
"""

from __future__ import annotations

from dataclasses import dataclass

from seqsched.common.errors import UserError


@dataclass(frozen=True)
class GPUSpec:
    name: str
    peak_tflops: float      # dense FP16/BF16 tensor-core TFLOP/s
    bandwidth_gbs: float    # HBM bandwidth, GB/s
    memory_gb: float        # device memory, GB (1e9 bytes)
    source: str

    @property
    def peak_flops(self) -> float:
        return self.peak_tflops * 1e12

    @property
    def bandwidth(self) -> float:
        return self.bandwidth_gbs * 1e9

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


GPUS: dict[str, GPUSpec] = {g.name: g for g in [
    # NVIDIA A100 Tensor Core GPU datasheet (2021): 312 TFLOPS FP16 dense, 1,555 GB/s (40GB
    # SXM), 2,039 GB/s (80GB SXM).
    GPUSpec("A100-40GB", 312.0, 1555.0, 40.0, "NVIDIA A100 datasheet (SXM4 40GB)"),
    GPUSpec("A100-80GB", 312.0, 2039.0, 80.0, "NVIDIA A100 datasheet (SXM4 80GB)"),
    # NVIDIA H100 datasheet: SXM5, 989 TFLOPS BF16 dense (1,979 with sparsity), 3.35 TB/s.
    GPUSpec("H100-SXM", 989.0, 3350.0, 80.0, "NVIDIA H100 datasheet (SXM5)"),
    # NVIDIA H200 datasheet: same compute as H100 SXM, 141 GB HBM3e at 4.8 TB/s.
    GPUSpec("H200", 989.0, 4800.0, 141.0, "NVIDIA H200 datasheet (SXM)"),
    # NVIDIA L4 datasheet: 242 TFLOPS FP16 with sparsity -> 121 dense, 300 GB/s, 24 GB GDDR6.
    GPUSpec("L4", 121.0, 300.0, 24.0, "NVIDIA L4 datasheet"),
]}


@dataclass(frozen=True)
class ModelSpec:
    """A LLaMA-family decoder shape (RMSNorm, SwiGLU MLP, rotary, optional GQA)."""

    name: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int
    d_ff: int
    vocab_size: int
    max_position: int
    dtype_bytes: int = 2    # fp16/bf16
    source: str = ""

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def layer_params(self) -> int:
        attn = self.d_model * (self.d_model + 2 * self.kv_dim) + self.d_model * self.d_model
        mlp = 3 * self.d_model * self.d_ff
        return attn + mlp + 2 * self.d_model

    @property
    def n_params(self) -> int:
        """All parameters: embedding + layers + final norm + (untied) LM head."""
        return 2 * self.vocab_size * self.d_model + self.n_layers * self.layer_params + self.d_model

    @property
    def weight_bytes(self) -> int:
        return self.n_params * self.dtype_bytes

    @property
    def kv_bytes_per_token(self) -> int:
        """K and V for every layer: 2 x layers x kv_dim x dtype bytes (0.5 MiB for LLaMA-7B)."""
        return 2 * self.n_layers * self.kv_dim * self.dtype_bytes


def _llama(name, layers, d, heads, kv, ff, vocab, ctx, source) -> ModelSpec:
    return ModelSpec(name, layers, d, heads, kv, ff, vocab, ctx, source=source)


MODELS: dict[str, ModelSpec] = {m.name: m for m in [
    # LLaMA (Touvron et al. 2023, Table 2) and its HF config: 6.74B / 13.0B parameters.
    _llama("llama-7b", 32, 4096, 32, 32, 11008, 32000, 2048, "LLaMA paper Tab. 2; HF config"),
    _llama("llama-13b", 40, 5120, 40, 40, 13824, 32000, 2048, "LLaMA paper Tab. 2; HF config"),
    # Vicuna-7B v1.1 is a LLaMA-7B fine-tune: identical shape (lmsys/vicuna-7b-v1.1 config).
    _llama("vicuna-7b", 32, 4096, 32, 32, 11008, 32000, 2048, "lmsys/vicuna-7b-v1.1 config.json"),
    # Llama 2 (Touvron et al. 2023b): 7B/13B as LLaMA with 4k context; 70B uses GQA (8 KV heads).
    _llama("llama-2-7b", 32, 4096, 32, 32, 11008, 32000, 4096, "meta-llama/Llama-2-7b-hf config"),
    _llama("llama-2-13b", 40, 5120, 40, 40, 13824, 32000, 4096,
           "meta-llama/Llama-2-13b-hf config"),
    _llama("llama-2-70b", 80, 8192, 64, 8, 28672, 32000, 4096, "meta-llama/Llama-2-70b-hf config"),
    # Llama 3 8B: GQA 8 KV heads, 128k vocabulary, 8k context (Meta-Llama-3-8B config.json).
    _llama("llama-3-8b", 32, 4096, 32, 8, 14336, 128256, 8192, "meta-llama/Meta-Llama-3-8B config"),
    # Mistral 7B (Jiang et al. 2023, Table 1): GQA 8 KV heads, ffn 14336, 32k vocab.
    _llama("mistral-7b", 32, 4096, 32, 8, 14336, 32000, 32768, "Mistral 7B paper Tab. 1"),
    # A tiny shape for CPU tests and the CI calibration profile (random weights).
    _llama("tiny", 2, 64, 4, 2, 128, 512, 1024, "seqsched test model"),
]}


def get_gpu(name: str) -> GPUSpec:
    try:
        return GPUS[name]
    except KeyError:
        raise UserError(f"unknown GPU {name!r}; choose one of {', '.join(GPUS)}") from None


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}") from None


def kv_capacity_tokens(gpu: GPUSpec, model: ModelSpec, memory_fraction: float = 0.9,
                       activation_reserve_gb: float = 0.0) -> int:
    """KV-cache capacity in tokens: the usable share of GPU memory minus the weights
    (vLLM's `gpu_memory_utilization` default is 0.9)."""
    free = gpu.memory_bytes * memory_fraction - model.weight_bytes - activation_reserve_gb * 1e9
    if free <= 0:
        raise UserError(f"model {model.name} ({model.weight_bytes / 1e9:.1f} GB of weights) does "
                        f"not fit in {gpu.name} ({gpu.memory_gb:.0f} GB x {memory_fraction}); "
                        "pick a bigger GPU or a smaller model")
    return int(free // model.kv_bytes_per_token)


__all__ = ["GPUSpec", "ModelSpec", "GPUS", "MODELS", "get_gpu", "get_model",
           "kv_capacity_tokens"]
