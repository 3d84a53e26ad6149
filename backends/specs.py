"""Built-in GPU and model specs. Every figure cites its source.

GPU figures are the vendor datasheets' dense (no sparsity) FP16/BF16 tensor-core peak and HBM
bandwidth; memory is the usable capacity in GiB-as-sold (decimal GB x 1e9 bytes). Model shapes
come from each model's published `config.json` (Hugging Face model cards) or paper.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from seqsched.backends.device_names import gpu_for_device
from seqsched.common.errors import UserError, did_you_mean, fold_name


@dataclass(frozen=True)
class GPUSpec:
    name: str
    peak_tflops: float      # dense FP16/BF16 tensor-core TFLOP/s
    bandwidth_gbs: float    # HBM bandwidth, GB/s
    memory_gb: float        # device memory, GB (1e9 bytes)
    source: str
    interconnect_gbs: float = 0.0       # GPU-to-GPU bandwidth per direction, GB/s (TP)
    interconnect: str = ""              # what that link is (NVLink 3, PCIe Gen5 x16, ...)
    allreduce_latency_us: float = 10.0  # fixed cost of one all-reduce (launch + sync)

    @property
    def peak_flops(self) -> float:
        return self.peak_tflops * 1e12

    @property
    def bandwidth(self) -> float:
        return self.bandwidth_gbs * 1e9

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9


# Interconnect per direction: NVLink 3 (A100) 600 GB/s total = 300 each way; NVLink 4 (H100/
# H200 SXM) 900 GB/s = 450; PCIe Gen4 x16 32 GB/s, Gen5 x16 64 GB/s (PCI-SIG). The all-reduce
# latency (5 us NVLink, 10 us PCIe) is the order of vLLM's custom all-reduce on small messages
# (aiconfigurator's H100 table: ~4-5 us at 2 GPUs for <= 64 KiB).
GPUS: dict[str, GPUSpec] = {g.name: g for g in [
    # NVIDIA A100 Tensor Core GPU datasheet (2021): 312 TFLOPS FP16 dense, 1,555 GB/s (40GB
    # SXM), 2,039 GB/s (80GB SXM).
    GPUSpec("A100-40GB", 312.0, 1555.0, 40.0, "NVIDIA A100 datasheet (SXM4 40GB)",
            300.0, "NVLink 3", 5.0),
    GPUSpec("A100-80GB", 312.0, 2039.0, 80.0, "NVIDIA A100 datasheet (SXM4 80GB)",
            300.0, "NVLink 3", 5.0),
    # NVIDIA H100 datasheet: SXM5, 989 TFLOPS BF16 dense (1,979 with sparsity), 3.35 TB/s.
    GPUSpec("H100-SXM", 989.0, 3350.0, 80.0, "NVIDIA H100 datasheet (SXM5)",
            450.0, "NVLink 4", 5.0),
    # NVIDIA H100 datasheet, PCIe: 756 TFLOPS BF16 dense (1,513 with sparsity), 2.0 TB/s
    # HBM2e, 80 GB; GPUs talk over PCIe Gen5 x16 unless bridged.
    GPUSpec("H100-PCIe", 756.0, 2000.0, 80.0, "NVIDIA H100 datasheet (PCIe)",
            64.0, "PCIe Gen5 x16", 10.0),
    # NVIDIA H200 datasheet: same compute as H100 SXM, 141 GB HBM3e at 4.8 TB/s.
    GPUSpec("H200", 989.0, 4800.0, 141.0, "NVIDIA H200 datasheet (SXM)",
            450.0, "NVLink 4", 5.0),
    # NVIDIA L4 datasheet: 242 TFLOPS FP16 with sparsity -> 121 dense, 300 GB/s, 24 GB GDDR6.
    GPUSpec("L4", 121.0, 300.0, 24.0, "NVIDIA L4 datasheet", 32.0, "PCIe Gen4 x16", 10.0),
    # NVIDIA Ada GPU architecture whitepaper (Appendix A, GeForce RTX 4090): 165.2 TFLOPS
    # FP16/BF16 tensor with FP32 accumulate, dense (330.3 with FP16 accumulate); 1,008 GB/s
    # GDDR6X; 24 GB; no NVLink, PCIe Gen4 x16.
    GPUSpec("RTX-4090", 165.2, 1008.0, 24.0, "NVIDIA Ada architecture whitepaper (RTX 4090)",
            32.0, "PCIe Gen4 x16", 10.0),
    # NVIDIA RTX PRO 6000 Blackwell Server Edition datasheet: 96 GB GDDR7 at 1,792 GB/s;
    # ~504 TFLOPS FP16/BF16 dense tensor (1/8 of the 4 PFLOPS FP4 sparse figure); PCIe Gen5.
    GPUSpec("RTX-PRO-6000", 503.8, 1792.0, 96.0,
            "NVIDIA RTX PRO 6000 Blackwell Server Edition datasheet", 64.0, "PCIe Gen5 x16",
            10.0),
    # NVIDIA L40S datasheet: 362.05 TFLOPS FP16/BF16 tensor dense (733 with sparsity), 48 GB
    # GDDR6 at 864 GB/s, PCIe Gen4 x16, no NVLink.
    GPUSpec("L40S", 362.05, 864.0, 48.0, "NVIDIA L40S datasheet", 32.0, "PCIe Gen4 x16", 10.0),
    # NVIDIA Ampere GA102 GPU architecture whitepaper (Appendix A): GeForce RTX 3090, 71 TFLOPS
    # FP16/BF16 tensor with FP32 accumulate, dense (142 with FP16 accumulate), 936 GB/s GDDR6X,
    # 24 GB; RTX A6000 (its datasheet): 154.8 TFLOPS BF16 dense (309.7 with sparsity), 48 GB
    # GDDR6 at 768 GB/s. Both: PCIe Gen4 x16; an NVLink bridge (112.5 GB/s both ways) is optional.
    GPUSpec("RTX-3090", 71.0, 936.0, 24.0, "NVIDIA Ampere GA102 whitepaper (RTX 3090)",
            32.0, "PCIe Gen4 x16", 10.0),
    GPUSpec("RTX-A6000", 154.8, 768.0, 48.0, "NVIDIA RTX A6000 datasheet",
            32.0, "PCIe Gen4 x16", 10.0),
]}
GPU_ALIASES = {"RTX4090": "RTX-4090", "RTXPRO6000": "RTX-PRO-6000",
               "RTX-PRO-6000-Blackwell": "RTX-PRO-6000", "H100": "H100-SXM",
               "A100": "A100-80GB", "A100-SXM": "A100-80GB", "RTX3090": "RTX-3090",
               "A6000": "RTX-A6000", "RTXA6000": "RTX-A6000"}


@dataclass(frozen=True)
class ModelSpec:
    """A LLaMA-family decoder shape (RMSNorm, SwiGLU MLP, rotary, optional GQA and MoE)."""

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
    head_size: int = 0      # 0: d_model / n_heads (Qwen3 sets its own head_dim)
    n_experts: int = 0      # MoE: experts per layer (0 = dense MLP)
    experts_per_token: int = 0
    tied_embeddings: bool = False
    qk_norm: bool = False   # a per-head RMSNorm of q and k before rotary (Qwen3)

    @property
    def head_dim(self) -> int:
        return self.head_size or self.d_model // self.n_heads

    @property
    def q_dim(self) -> int:
        return self.n_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_dim

    @property
    def attn_params(self) -> int:
        return self.d_model * (self.q_dim + 2 * self.kv_dim) + self.q_dim * self.d_model

    @property
    def expert_params(self) -> int:
        """One SwiGLU MLP (gate, up, down)."""
        return 3 * self.d_model * self.d_ff

    @property
    def all_expert_params(self) -> int:
        """Every MoE layer's experts together (0 for a dense model)."""
        return self.n_layers * self.n_experts * self.expert_params

    @property
    def layer_params(self) -> int:
        experts = max(self.n_experts, 1)
        router = self.d_model * self.n_experts
        return self.attn_params + experts * self.expert_params + router + 2 * self.d_model

    @property
    def active_layer_params(self) -> int:
        """Parameters one token computes with: its `experts_per_token` experts, not all."""
        if not self.n_experts:
            return self.layer_params
        return (self.attn_params + self.experts_per_token * self.expert_params
                + self.d_model * self.n_experts + 2 * self.d_model)

    @property
    def n_params(self) -> int:
        """All parameters: embedding + layers + final norm + (untied) LM head."""
        tables = 1 if self.tied_embeddings else 2
        return tables * self.vocab_size * self.d_model + self.n_layers * self.layer_params \
            + self.d_model

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
    # Llama 3.1 / 3.3 (meta-llama/Llama-3.1-8B, -3.1-70B, -3.3-70B-Instruct, Meta-Llama-3-70B
    # config.json): GQA 8 KV heads, 128,256 vocabulary; 3.x-70B: 80 layers, 8192, ffn 28672.
    _llama("llama-3.1-8b", 32, 4096, 32, 8, 14336, 128256, 131072,
           "meta-llama/Llama-3.1-8B config.json"),
    _llama("llama-3-70b", 80, 8192, 64, 8, 28672, 128256, 8192,
           "meta-llama/Meta-Llama-3-70B config.json"),
    _llama("llama-3.1-70b", 80, 8192, 64, 8, 28672, 128256, 131072,
           "meta-llama/Llama-3.1-70B config.json"),
    _llama("llama-3.3-70b", 80, 8192, 64, 8, 28672, 128256, 131072,
           "meta-llama/Llama-3.3-70B-Instruct config.json"),
    # CodeLlama-34B (codellama/CodeLlama-34b-hf config.json): 48 layers, GQA 8, ffn 22016.
    _llama("codellama-34b", 48, 8192, 64, 8, 22016, 32000, 16384,
           "codellama/CodeLlama-34b-hf config.json"),
    # Qwen2.5 (Qwen/Qwen2.5-7B, -72B config.json): 7B 28 layers x 3584, 28 heads, 4 KV, ffn
    # 18944; 72B 80 x 8192, 64 heads, 8 KV, ffn 29568; vocabulary 152,064 (q/k/v biases are
    # ignored: < 0.01% of the parameters).
    _llama("qwen2.5-7b", 28, 3584, 28, 4, 18944, 152064, 131072, "Qwen/Qwen2.5-7B config.json"),
    _llama("qwen2.5-72b", 80, 8192, 64, 8, 29568, 152064, 131072,
           "Qwen/Qwen2.5-72B config.json"),
    # Qwen3-32B (Qwen/Qwen3-32B config.json): 64 layers x 5120, 64 heads of head_dim 128 (q is
    # 8192 wide), 8 KV heads, ffn 25600, vocabulary 151,936, 40,960 positions.
    ModelSpec("qwen3-32b", 64, 5120, 64, 8, 25600, 151936, 40960,
              source="Qwen/Qwen3-32B config.json", head_size=128, qk_norm=True),
    # Qwen3-30B-A3B-Instruct-2507 (Qwen/Qwen3-30B-A3B-Instruct-2507 config.json, as
    # casys-kaist/LLMServingSim @ 5daddb2 (MIT) ships it in configs/model/Qwen/): 48 layers x
    # 2048, 32 heads of head_dim 128, 4 KV heads, MoE in every layer (decoder_sparse_step 1,
    # no mlp_only_layers): 128 experts of moe_intermediate_size 768, 8 per token; vocabulary
    # 151,936, untied embeddings, 262,144 positions.
    ModelSpec("qwen3-30b-a3b", 48, 2048, 32, 4, 768, 151936, 262144,
              source="Qwen/Qwen3-30B-A3B-Instruct-2507 config.json", head_size=128,
              n_experts=128, experts_per_token=8, qk_norm=True),
    # Mixtral-8x7B (mistralai/Mixtral-8x7B-v0.1 config.json): 32 layers x 4096, GQA 8, 8
    # experts of ffn 14336 per layer, 2 active per token, 32k vocabulary.
    ModelSpec("mixtral-8x7b", 32, 4096, 32, 8, 14336, 32000, 32768,
              source="mistralai/Mixtral-8x7B-v0.1 config.json", n_experts=8,
              experts_per_token=2),
    # Phi-mini-MoE-instruct (microsoft/Phi-mini-MoE-instruct config.json, as casys-kaist/
    # LLMServingSim @ 5daddb2 (MIT) ships it in configs/model/microsoft/): 32 layers x 4096,
    # 32 heads of 128, 8 KV heads, 16 experts of ffn 960, 2 per token, vocabulary 32,064,
    # untied, 4,096 positions. Its 2,047-token sliding window is not modelled (full attention).
    ModelSpec("phi-mini-moe", 32, 4096, 32, 8, 960, 32064, 4096,
              source="microsoft/Phi-mini-MoE-instruct config.json", head_size=128,
              n_experts=16, experts_per_token=2),
    # A tiny shape for CPU tests and the CI calibration profile (random weights).
    _llama("tiny", 2, 64, 4, 2, 128, 512, 1024, "seqsched test model"),
]}


MODEL_ALIASES = {"meta-llama/Llama-3.1-8B": "llama-3.1-8b", "meta-llama/Llama-2-7b-hf":
                 "llama-2-7b", "meta-llama/Llama-2-70b-hf": "llama-2-70b",
                 "meta-llama/Meta-Llama-3-8B": "llama-3-8b",
                 "meta-llama/Meta-Llama-3-70B": "llama-3-70b", "Qwen/Qwen3-32B": "qwen3-32b",
                 "Qwen/Qwen3-30B-A3B-Instruct-2507": "qwen3-30b-a3b",
                 "Qwen/Qwen3-30B-A3B": "qwen3-30b-a3b",
                 "qwen3-30b-a3b-instruct-2507": "qwen3-30b-a3b"}


# A Hugging Face id's release tags (peeled off the end one by one to find the base shape):
# -hf, -instruct, -chat, -it, -base, a version -v0.1, a date -2507. A quantised name (-AWQ,
# -FP8) is never peeled: its weights differ, so it needs its config.json.
RELEASE_TAG = re.compile(r"-(hf|instruct|chat|it|base|v\d+(\.\d+)*|\d{4})$")


def builtin_gpu_name(name: str) -> str | None:
    """The built-in GPU a typed name means: itself, an alias, the same ignoring case/spaces
    ("h100-sxm", "RTX 4090") or a CUDA device name ("NVIDIA H100 80GB HBM3",
    backends/device_names.py); None when none."""
    if name in GPUS or name in GPU_ALIASES:
        return GPU_ALIASES.get(name, name)
    folded = {fold_name(k): v for k, v in {**{g: g for g in GPUS}, **GPU_ALIASES}.items()}
    return folded.get(fold_name(name)) or gpu_for_device(name)


def builtin_model_name(name: str) -> str | None:
    """The built-in model a typed name means: itself, an alias, the same ignoring case, or a
    Hugging Face id whose basename with release tags peeled and a leading meta- dropped is one
    (meta-llama/Meta-Llama-3-8B-Instruct -> llama-3-8b, mistralai/Mixtral-8x7B-Instruct-v0.1
    -> mixtral-8x7b): a fine-tune keeps its base model's shape. None when none."""
    if name in MODELS or name in MODEL_ALIASES:
        return MODEL_ALIASES.get(name, name)
    folded = {fold_name(k): v for k, v in {**{m: m for m in MODELS}, **MODEL_ALIASES}.items()}
    tries = [fold_name(name), fold_name(str(name).rstrip("/").split("/")[-1])]
    while (peeled := RELEASE_TAG.sub("", tries[-1])) != tries[-1]:
        tries.append(peeled)
    tries += [t[len("meta-"):] for t in tries[1:] if t.startswith("meta-")]
    return next((folded[t] for t in tries if t in folded), None)


def get_gpu(name: str) -> GPUSpec:
    """A built-in GPU by name, alias or a spelling of one (`builtin_gpu_name`; files:
    backends/spec_files.resolve_gpu)."""
    found = builtin_gpu_name(name)
    if found is None:
        raise UserError(f"unknown GPU {name!r}{did_you_mean(name, GPUS)}; choose one of "
                        f"{', '.join(GPUS)} or give a GPU TOML file (keys peak_tflops, "
                        "bandwidth_gbs, memory_gb: README, 'Backends')")
    return GPUS[found]


def get_model(name: str) -> ModelSpec:
    """A built-in model by name, alias or a spelling of one (`builtin_model_name`; files:
    backends/spec_files.resolve_model)."""
    found = builtin_model_name(name)
    if found is None:
        raise UserError(f"unknown model {name!r}{did_you_mean(name, MODELS)}; choose one of "
                        f"{', '.join(MODELS)} or give a Hugging Face config.json") from None
    return MODELS[found]


def weight_bytes_per_gpu(model: ModelSpec, tp: int = 1, ep: int = 1) -> float:
    """One GPU's weights: 1/tp of each; with expert parallelism over `ep` data-parallel ranks
    (vLLM's --enable-expert-parallel: EP size = DP x TP) each GPU holds only its
    n_experts / (ep x tp) local experts, whole (vLLM 0.19.0 `FusedMoE` creates weights for its
    `local_num_experts`, vllm/model_executor/layers/fused_moe/layer.py:384-392, 550-566)."""
    if ep <= 1 or not model.n_experts:
        return model.weight_bytes / tp
    experts = model.all_expert_params * model.dtype_bytes
    return (model.weight_bytes - experts) / tp + experts / (tp * ep)


def kv_capacity_tokens(gpu: GPUSpec, model: ModelSpec, memory_fraction: float = 0.9,
                       activation_reserve_gb: float = 0.0, tp: int = 1, ep: int = 1) -> int:
    """KV-cache capacity in tokens: the usable share of GPU memory minus the weights
    (vLLM's `gpu_memory_utilization` default is 0.9). With tensor parallelism each of the
    `tp` GPUs holds 1/tp of the weights and of every token's KV heads, so the capacity is
    the per-GPU free memory over the per-GPU KV bytes of one token; an MoE model's experts
    split further over `ep` DP ranks under expert parallelism (`weight_bytes_per_gpu`)."""
    per_gpu_weights = weight_bytes_per_gpu(model, tp, ep)
    free = gpu.memory_bytes * memory_fraction - per_gpu_weights - activation_reserve_gb * 1e9
    if free <= 0:
        split = f" / TP{tp}" if tp > 1 else ""
        raise UserError(f"model {model.name} ({model.weight_bytes / 1e9:.1f} GB of weights"
                        f"{split}) does not fit in {gpu.name} ({gpu.memory_gb:.0f} GB x "
                        f"{memory_fraction}); pick a bigger GPU, a smaller model or more --tp")
    return int(free // kv_bytes_per_gpu(model, tp))


def check_tensor_parallel(model: ModelSpec, tp: int) -> None:
    """The head splits vLLM accepts (vLLM 0.19.0, Apache-2.0): `ModelConfig.
    verify_with_parallel_config` refuses query heads not divisible by the TP size, and
    `QKVParallelLinear` (`divide`) needs the KV heads divisible by it, or it divisible by them
    when it is larger (each KV head is then replicated on tp / kv GPUs)."""
    if tp <= 1:
        return
    fix = "pick a --tp (--tensor-parallel-size) that divides them"
    if model.n_heads % tp:
        raise UserError(f"model {model.name}: its {model.n_heads} attention heads cannot be "
                        f"split over tensor parallel size {tp} (vLLM refuses it too); {fix}")
    kv = model.n_kv_heads
    if (kv % tp) if kv >= tp else (tp % kv):
        raise UserError(f"model {model.name}: its {kv} KV heads cannot be split over tensor "
                        f"parallel size {tp}, nor replicated evenly (vLLM refuses it too); {fix}")


def kv_bytes_per_gpu(model: ModelSpec, tp: int = 1) -> float:
    """One token's KV bytes on one GPU: KV heads split over TP (a head is never split: with
    fewer KV heads than GPUs, vLLM replicates them, one per GPU)."""
    check_tensor_parallel(model, tp)
    heads = max(model.n_kv_heads / tp, 1.0)
    return 2 * model.n_layers * heads * model.head_dim * model.dtype_bytes


__all__ = ["GPUSpec", "ModelSpec", "GPUS", "MODELS", "get_gpu", "get_model",
           "kv_capacity_tokens", "kv_bytes_per_gpu", "weight_bytes_per_gpu", "check_tensor_parallel", "GPU_ALIASES",
           "MODEL_ALIASES", "builtin_gpu_name", "builtin_model_name"]
