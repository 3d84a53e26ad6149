"""Import aiconfigurator's measured vLLM kernel tables (ai-dynamo/aiconfigurator, Apache-2.0:
`<gpu>/{gemm,attention,comm}/vllm/<version>/*.parquet`, latencies in ms) as a kernel profile
for one model and TP degree.

- GEMMs (bf16, by m x n x k): QKV, O, gate/up, down per layer at the model's per-GPU shapes
  (n or k divided by TP), the LM head by sequences; blended linearly between grid nodes;
- context attention (per sequence, batch 1, by prompt length): a chunk of q new tokens on p
  cached ones costs the full prefill of p+q scaled by its share of score entries,
  q (p + (q+1)/2) / ((p+q)(p+q+1)/2) (the table has no cached-prefix axis);
- generation attention (by batch and context = step + 1); cells the collector could not fit in
  memory are filled linearly in batch from the largest measured batch at that context;
- decode rows of a mixed prefill + decode batch (`attention.mixed`, GPUs of known architecture):
  vLLM runs the batch as one varlen FlashAttention call whose tiling of a one-token query
  differs from the decode-only kernel's; the extra tiles are timed at the context kernel's
  measured per-tile rate (backends/fa_tiles.py);
- all-reduce: vLLM's custom all-reduce (CUDA-graph mode) by message size at the TP degree
  (`message_size` is elements: the collector all-reduces `torch.ones(size)`; bytes = 2 x size);
- RMSNorm, rotary, SiLU-and-mul and the embedding gather are not in the tables: modelled as
  memory traffic at the GPU's datasheet bandwidth plus a 3 us launch (provenance says so).

As aiconfigurator composes a vLLM iteration (aic-core/rust/.../perf_database/{gemm,attention}.rs
and models/llama.py @ 095f58a), with the GPU given:
- every measured GEMM and generation-attention latency is raised to its speed of light, as
  aiconfigurator clamps both tables when it loads them (`clamp_gemm_grids_to_sol`,
  `clamp_generation_attention_grids_to_sol`): max(FLOPs / peak, bytes / bandwidth). Its
  collector replays one kernel on the same tensors in a CUDA graph (collector/helper.py
  `benchmark_with_power`), so a KV cache or weight that fits in L2 measures faster than DRAM
  allows, which it cannot be in a forward pass through every layer;
- RMSNorm is vLLM's fused residual add + norm (its `add_norm` ops: input and residual read,
  both written, 2 (2h + 2h) bytes a token);
- models with a per-head q/k RMSNorm (Qwen3: vLLM's `Qwen3Attention.q_norm/k_norm`) get it as
  one more memory op (q and k read and written);
- the sampler, which no table measures, is the least vLLM's V1 sampler does for every row
  (vllm/v1/sample/sampler.py: the logits cast to float32, then an argmax or a sampled
  argmax over them): V x (2 + 4 + 4) bytes a row in two memory ops.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.backends.fa_tiles import (Tiling, compose, mixed_extra_us, tile_rate,
                                        tiling_for)
from seqsched.backends.import_aiconfigurator_moe import measured_collectives, moe_by_ep
from seqsched.backends.interp import interp1
from seqsched.backends.profile_common import (PER_LAYER, allreduce_section, calibration, sig,
                                              skeleton)
from seqsched.backends.specs import GPUSpec, ModelSpec
from seqsched.common.errors import UserError

REPO = "ai-dynamo/aiconfigurator"
LICENCE = "Apache-2.0"
LAUNCH_US = 3.0
TOKENS = np.unique(np.concatenate([np.arange(1, 17), 2 ** np.arange(5, 15),
                                   np.arange(256, 8193, 256)])).astype(float)
SEQS = np.array([1, 2, 4, 8, 16, 32, 64, 128, 256, 512], dtype=float)
CACHED = np.array([0, 128, 512, 1024, 2048, 4096, 8192, 16384], dtype=float)


def _version_key(path: Path) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in path.parent.name.split("."))


def _read(folder: Path, table: str, version: str | None = None) -> tuple[pd.DataFrame, str]:
    """The table of vLLM `version` (default: the newest measured)."""
    hits = sorted(folder.glob(f"*/vllm/*/{table}.parquet"), key=_version_key)
    if version is not None:
        have = sorted({h.parent.name for h in hits})
        hits = [h for h in hits if h.parent.name == version]
        if not hits and have:
            raise UserError(f"{folder}: no {table} measured for vLLM {version} (measured: "
                            f"{', '.join(have)}); pick one with --engine-version")
    if not hits:
        raise UserError(f"{folder}: no */vllm/<version>/{table}.parquet; point PATH at an "
                        "aiconfigurator systems folder such as .../h100_sxm")
    try:
        return pd.read_parquet(hits[-1]), hits[-1].parent.name
    except (OSError, ValueError) as e:
        raise UserError(f"{hits[-1]}: cannot read it as parquet ({e})") from None


def _need(df: pd.DataFrame, cols: list[str], what: str) -> pd.DataFrame:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise UserError(f"aiconfigurator {what}: missing column(s) {', '.join(missing)}")
    return df


def gemm_sol_us(m, n: float, k: float, gpu: GPUSpec) -> np.ndarray:
    """A bf16 GEMM's speed of light (aiconfigurator's `gemm_sol_with_flops`):
    max(2 m n k / peak FLOP/s, 2 (m n + m k + n k) bytes / bandwidth)."""
    m = np.asarray(m, dtype=float)
    return np.maximum(2 * m * n * k / gpu.peak_flops,
                      2 * (m * n + m * k + n * k) / gpu.bandwidth) * 1e6


def decode_sol_us(rows, context, heads: int, kv_heads: int, head_dim: int,
                  gpu: GPUSpec) -> np.ndarray:
    """Generation attention's speed of light (aiconfigurator's `generation_attention_sol`,
    bf16 KV): each row reads its context - 1 cached keys and values and writes one of each,
    max(4 b n h (s - 1) / peak FLOP/s, b (4 n h + 4 n_kv (s - 1) h) bytes / bandwidth)."""
    b, kv_len = np.asarray(rows, dtype=float), np.asarray(context, dtype=float) - 1.0
    math = 2.0 * b * heads * head_dim * 2.0 * kv_len / gpu.peak_flops
    mem = b * (4.0 * heads * head_dim + 4.0 * kv_heads * kv_len * head_dim) / gpu.bandwidth
    return np.maximum(math, mem) * 1e6


@dataclass
class Gemm:
    """bf16 GEMM latency (us) by m, blended bilinearly over the (n, k) grid nodes; with a GPU,
    every measured point raised to its speed of light (as aiconfigurator loads the table)."""
    table: pd.DataFrame
    gpu: GPUSpec | None = None

    def __post_init__(self) -> None:
        t = self.table
        self.ns = np.sort(t["n"].unique()).astype(float)
        self.ks = np.sort(t["k"].unique()).astype(float)
        self.series = {}
        for (n, k), g in t.sort_values("m").groupby(["n", "k"]):
            m, us = g["m"].to_numpy(float), g["latency"].to_numpy(float) * 1e3
            if self.gpu is not None:
                us = np.maximum(us, gemm_sol_us(m, float(n), float(k), self.gpu))
            self.series[(float(n), float(k))] = (m, us)

    def _node(self, n: float, k: float, m: np.ndarray) -> np.ndarray:
        s = self.series.get((n, k))
        if s is None:          # an unmeasured node: the nearest measured one, scaled by n x k
            near = min(self.series, key=lambda nk: abs(np.log(nk[0] * nk[1] / (n * k))))
            x, y = self.series[near]
            return interp1(x, y, m) * (n * k) / (near[0] * near[1])
        return interp1(*s, m)

    def __call__(self, m, n: float, k: float) -> np.ndarray:
        m = np.asarray(m, dtype=float)
        i = int(np.clip(np.searchsorted(self.ns, n) - 1, 0, len(self.ns) - 2))
        j = int(np.clip(np.searchsorted(self.ks, k) - 1, 0, len(self.ks) - 2))
        n0, n1, k0, k1 = self.ns[i], self.ns[i + 1], self.ks[j], self.ks[j + 1]
        tn, tk = (n - n0) / (n1 - n0), (k - k0) / (k1 - k0)
        a = self._node(n0, k0, m) + tk * (self._node(n0, k1, m) - self._node(n0, k0, m))
        b = self._node(n1, k0, m) + tk * (self._node(n1, k1, m) - self._node(n1, k0, m))
        return np.maximum(a + tn * (b - a), 0.0)


def load_gemm(folder: Path, dtype: str = "bfloat16", version: str | None = None,
              gpu: GPUSpec | None = None) -> tuple[Gemm, str]:
    df, version = _read(folder, "gemm_perf", version)
    df = _need(df, ["gemm_dtype", "m", "n", "k", "latency"], "gemm_perf")
    df = df[df["gemm_dtype"] == dtype].groupby(["m", "n", "k"], as_index=False)["latency"].mean()
    if df.empty:
        raise UserError(f"{folder}: no {dtype} GEMM rows")
    return Gemm(df, gpu), version


def _heads(df: pd.DataFrame, model: ModelSpec, tp: int, what: str,
           kv: int | None = None) -> pd.DataFrame:
    h, kv = model.n_heads // tp, kv or max(model.n_kv_heads // tp, 1)
    sel = df[(df["num_heads"] == h) & (df["num_key_value_heads"] == kv)
             & (df["head_dim"] == model.head_dim) & (df["kv_cache_dtype"] == "bfloat16")]
    if "window_size" in sel:
        sel = sel[sel["window_size"] == 0]
    if sel.empty:
        raise UserError(f"aiconfigurator {what}: no rows for {h} query / {kv} KV heads of dim "
                        f"{model.head_dim} (the model at TP{tp}); pick another --tp")
    return sel


def attention_section(folder: Path, model: ModelSpec, tp: int, version: str | None = None,
                      gpu: GPUSpec | None = None) -> tuple[dict, str]:
    cols = ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim",
            "kv_cache_dtype", "step", "latency"]
    ctx, version = _read(folder, "context_attention_perf", version)
    gen, _ = _read(folder, "generation_attention_perf", version)
    ctx = _heads(_need(ctx, cols, "context attention"), model, tp, "context attention")
    gen = _need(gen, cols, "generation attention")
    kv_want = max(model.n_kv_heads // tp, 1)
    kv_have = gen.loc[(gen["num_heads"] == model.n_heads // tp)
                      & (gen["num_key_value_heads"] <= kv_want), "num_key_value_heads"]
    kv_used = int(kv_have.max()) if len(kv_have) else kv_want
    gen = _heads(gen, model, tp, "generation attention", kv_used)
    one = ctx[ctx["batch_size"] == 1].groupby("isl")["latency"].mean() * 1e3
    isl, full = one.index.to_numpy(float), one.to_numpy(float)
    q, p = TOKENS[TOKENS <= 8192][:, None], CACHED[None, :]
    total = q + p
    share = q * (p + (q + 1) / 2) / (total * (total + 1) / 2)
    prefill = interp1(isl, full, total) * share
    g = gen.assign(context=gen["step"] + 1).pivot_table(index="batch_size", columns="context",
                                                        values="latency") * 1e3
    rows, contexts = g.index.to_numpy(float), g.columns.to_numpy(float)
    grid = np.array(g.to_numpy(float))
    if gpu is not None:      # measured cells raised to their speed of light (NaN stays NaN)
        grid = np.maximum(grid, decode_sol_us(rows[:, None], contexts[None, :],
                                              model.n_heads // tp, kv_used, model.head_dim, gpu))
    for j in range(grid.shape[1]):           # fill unmeasured big batches linearly in batch
        col = grid[:, j]
        ok = np.flatnonzero(np.isfinite(col))
        if ok.size:
            top = ok[-1]
            col[top + 1:] = col[top] * rows[top + 1:] / rows[top]
    if not np.all(np.isfinite(grid)):
        raise UserError(f"{folder}: generation attention has contexts with no measurement")
    if kv_used != kv_want:   # MHA beyond the table's KV heads: scale the KV-read part
        base = grid[:, :1]
        grid = base + (grid - base) * kv_want / kv_used
    section = {"kind": "split", "count": model.n_layers,
               "prefill": {"tokens": sig(q.ravel(), 6), "cached": sig(CACHED, 6),
                           "us": [sig(r) for r in prefill]},
               "decode": {"rows": sig(rows, 6), "context": sig(contexts, 8),
                          "us": [sig(r) for r in grid]},
               "kv_heads_measured": kv_used, "kv_heads": kv_want}
    tiling = (tiling_for(gpu.name, model.n_heads // tp, kv_want, model.head_dim)
              if gpu is not None else None)
    if tiling is not None:
        section["mixed"] = mixed_section(ctx, tiling, contexts)
    return section, version


def mixed_section(ctx: pd.DataFrame, tiling: Tiling, contexts: np.ndarray) -> dict:
    """`us`: the extra a decode row costs (one layer) in a mixed batch, by its context
    (backends/fa_tiles.py), from the context-attention table's causal prefills."""
    lat = ctx.groupby(["batch_size", "isl"])["latency"].mean() * 1e3
    b, isl = (lat.index.get_level_values(k).to_numpy(float) for k in ("batch_size", "isl"))
    per_cta, per_tile = tile_rate(tiling, isl, b, lat.to_numpy(float))
    return {"context": sig(contexts, 8),
            "us": sig(mixed_extra_us(tiling, contexts, per_cta, per_tile)),
            "compose": compose(tiling), "flash_attention": tiling.version,
            "block_n": tiling.block_n,
            "rows_mixed": tiling.decode_rows(True), "rows_decode": tiling.decode_rows(False)}


def allreduce_table(folder: Path, model: ModelSpec, tp: int,
                    version: str | None = None) -> dict:
    df, _ = _read(folder, "custom_allreduce_perf", version)
    return allreduce_from_frame(df, model, tp, folder)


def allreduce_from_frame(df: pd.DataFrame, model: ModelSpec, tp: int, where) -> dict:
    """The profile's `allreduce` section from a custom_allreduce_perf table."""
    df = _need(df, ["num_gpus", "message_size", "latency", "backend"], "all-reduce")
    sel = df[(df["num_gpus"] == tp) & (df["backend"] == "vllm_graph")]
    if sel.empty:
        raise UserError(f"{where}: no all-reduce measured at {tp} GPUs")
    sel = sel.groupby("message_size")["latency"].mean()
    return allreduce_section(model, tp, sel.index.to_numpy(float) * model.dtype_bytes,
                             sel.to_numpy(float) * 1e3,
                             "aiconfigurator vLLM custom all-reduce (CUDA graph), measured")


def memory_op_us(tokens: np.ndarray, bytes_per_token: float, gpu: GPUSpec) -> np.ndarray:
    return LAUNCH_US + tokens * bytes_per_token / gpu.bandwidth * 1e6


def elementwise_ops(model: ModelSpec, tp: int, gpu: GPUSpec) -> dict:
    """Fused residual add + RMSNorm, rotary, SiLU-and-mul, embedding gather, and q/k RMSNorm
    where the model has one: modelled memory traffic (us)."""
    b, d = model.dtype_bytes, model.d_model
    qk = 2 * (model.q_dim + model.kv_dim) / tp * b          # q and k, read and written
    per_token = {"layernorm": 4 * d * b, "rotary_emb": qk,
                 "act_fn": 3 * model.d_ff / tp * b, "embedding": 2 * d * b,
                 "final_layernorm": 4 * d * b}
    if model.qk_norm:
        per_token["qk_norm"] = qk
    out = {}
    for name, nbytes in per_token.items():
        count = PER_LAYER.get(name, 0) * model.n_layers or 1
        out[name] = {"count": count, "tokens": sig(TOKENS, 6),
                     "us": sig(memory_op_us(TOKENS, nbytes, gpu)), "modelled": True}
    return out


def gemm_ops(gemm: Gemm, model: ModelSpec, tp: int) -> tuple[dict, dict]:
    d, q, kv, ff = model.d_model, model.q_dim, model.kv_dim, model.d_ff
    shapes = {"qkv_proj": ((q + 2 * kv) / tp, d), "o_proj": (d, q / tp),
              "gate_up_proj": (2 * ff / tp, d), "down_proj": (d, ff / tp)}
    dense = {name: {"count": model.n_layers, "tokens": sig(TOKENS, 6),
                    "us": sig(gemm(TOKENS, n, k))} for name, (n, k) in shapes.items()}
    head = {"lm_head": {"count": 1, "sequences": sig(SEQS, 6),
                        "us": sig(gemm(SEQS, model.vocab_size / tp, d))}}
    return dense, head


def sampler_op(model: ModelSpec, gpu: GPUSpec) -> dict:
    """The float32 cast of a row's logits (V bf16 read, V float32 written) and the argmax over
    them (V float32 read): two memory ops per iteration (us, by sequences)."""
    us = 2 * LAUNCH_US + SEQS * model.vocab_size * (2 + 4 + 4) / gpu.bandwidth * 1e6
    return {"count": 1, "sequences": sig(SEQS, 6), "us": sig(us), "modelled": True}


def import_aiconfigurator(path, model: ModelSpec, tp: int = 1, gpu: GPUSpec | None = None,
                          name: str | None = None, version: str | None = None) -> dict:
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; give an aiconfigurator systems folder "
                        "(e.g. .../aiconfigurator/h100_sxm)")
    if gpu is None:
        raise UserError("aiconfigurator import needs --gpu (its datasheet bandwidth times the "
                        "norms and activations the tables do not measure)")
    gemm, version = load_gemm(folder, version=version, gpu=gpu)
    moe = moe_by_ep(folder, model, tp, version) if model.n_experts else None
    attention, _ = attention_section(folder, model, tp, version, gpu)
    scaled = attention.pop("kv_heads_measured") != attention.pop("kv_heads")
    dense, head = gemm_ops(gemm, model, tp)
    dense.update(elementwise_ops(model, tp, gpu))
    head["sampler"] = sampler_op(model, gpu)
    if moe is not None:     # the experts' FFN and activation are the fused MoE layer's
        for op in ("gate_up_proj", "down_proj", "act_fn"):
            dense.pop(op)
        dense["router_gemm"] = {"count": model.n_layers, "tokens": sig(TOKENS, 6),
                                "us": sig(gemm(TOKENS, model.n_experts, model.d_model))}
        comm = measured_collectives(folder)
        if comm:
            moe["ep_comm"] = comm
    prov = {"source": "aiconfigurator", "repo": REPO, "licence": LICENCE, "path": str(folder),
            "hardware": folder.name, "engine": "vllm", "engine_version": version,
            "dtype": "bf16", "tp": tp,
            "notes": ["GEMMs, context/generation attention and all-reduce measured (vLLM "
                      "kernels); GEMM and decode attention raised to their speed of light at "
                      f"{gpu.peak_tflops:g} TFLOP/s and {gpu.bandwidth_gbs:g} GB/s, as "
                      "aiconfigurator loads them",
                      "fused residual add + RMSNorm, rotary, "
                      + ("" if model.n_experts else "activation, ") + "embedding"
                      + (", q/k RMSNorm" if model.qk_norm else "") + " and the sampler "
                      "(float32 cast + argmax of the logits) modelled as memory traffic at "
                      f"{gpu.bandwidth_gbs:g} GB/s + {LAUNCH_US:g} us per op",
                      "prefill with cached context scaled from full-prefill times by score "
                      "entries; each chunk timed as its own batch-1 kernel"]}
    if "mixed" in attention:
        prov["notes"].append(
            "decode rows of a mixed prefill + decode batch: FlashAttention "
            + str(attention["mixed"]["flash_attention"]) + "'s query tiles of a batch that is "
            "not decode-only, at the per-tile time of the measured context kernel, "
            + ("added to the decode kernel's time" if attention["mixed"]["compose"] == "add"
               else "or the decode kernel's time if longer") + " (backends/fa_tiles.py)")
    if moe is not None:
        prov["notes"].append("MoE: router GEMM (hidden x experts) measured; experts from "
                             f"{moe['table']}, one rank by the tokens it gathers at the run's "
                             "expert-parallel size" + (f"; dispatch / combine: {comm['source']}"
                                                       if comm else ""))
    if scaled:
        prov["notes"].append("decode attention measured with fewer KV heads than the model "
                             "has per GPU: its context-dependent part scaled by the ratio")
    profile = skeleton(name or f"{folder.name}-{model.name}-tp{tp}-aic", model, gpu.name, tp,
                       "bf16", prov)
    profile["dense"], profile["per_sequence"], profile["attention"] = dense, head, attention
    if moe is not None:
        profile["moe"] = moe
    if tp > 1:
        profile["allreduce"] = allreduce_table(folder, model, tp, version)
    profile["calibration"] = calibration(profile)
    return profile


__all__ = ["import_aiconfigurator", "load_gemm", "attention_section", "allreduce_table",
           "allreduce_from_frame",
           "gemm_ops", "elementwise_ops", "sampler_op", "gemm_sol_us", "decode_sol_us", "Gemm"]
