"""aiconfigurator's measured MoE and NCCL tables for an MoE kernel profile (ai-dynamo/
aiconfigurator @ 095f58a, Apache-2.0).

- `moe/vllm/<version>/moe_perf.parquet`: one vLLM `FusedMoE` layer on one rank (router logits
  given, experts fused; no router GEMM, no dispatch / combine) by `num_tokens`, the tokens the
  rank holds after dispatch, at each expert-parallel size `moe_ep_size` (the rank owns E / ep
  experts: collector/vllm/collect_moe.py builds the rank-0 expert map of an ep-rank model),
  with `balanced` router logits (every expert gets the same share of the token-expert pairs).
  Kept as {ep: (tokens, us)}: backends/moe_profile.py looks the run's EP size up at the tokens
  the rank gathers;
- `comm/nccl/<version>/nccl_perf.parquet`: NCCL all_gather / reduce_scatter by GPU count
  (nccl-tests; `message_size` in elements of the whole buffer), the expert-parallel dispatch
  and combine (LLMServingSim-bundle MoE profiles take them from here too).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from seqsched.backends.profile_common import sig
from seqsched.backends.specs import ModelSpec
from seqsched.common.errors import UserError


def _parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read it as parquet ({e})") from None


def moe_by_ep(folder: Path, model: ModelSpec, tp: int, version: str) -> dict:
    """The profile's `moe` section from aiconfigurator's bf16 MoE table of this model's
    expert shape (hidden, expert FFN, experts, top-k) at MoE TP `tp`."""
    path = Path(folder) / "moe" / "vllm" / str(version) / "moe_perf.parquet"
    if not path.is_file():
        raise UserError(f"{path}: no such file; aiconfigurator measured no vLLM {version} MoE "
                        "here, so this MoE model has no aiconfigurator profile")
    df = _parquet(path)
    need = {"moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts",
            "moe_tp_size", "moe_ep_size", "distribution", "latency"}
    if not need <= set(df.columns):
        raise UserError(f"{path}: missing column(s) {', '.join(sorted(need - set(df.columns)))}")
    sel = df[(df["moe_dtype"] == "bfloat16") & (df["hidden_size"] == model.d_model)
             & (df["inter_size"] == model.d_ff) & (df["num_experts"] == model.n_experts)
             & (df["topk"] == model.experts_per_token) & (df["moe_tp_size"] == tp)
             & (df["distribution"] == "balanced")]
    if sel.empty:
        raise UserError(f"{path}: no bf16 MoE of hidden {model.d_model}, expert FFN "
                        f"{model.d_ff}, {model.n_experts} experts, top-{model.experts_per_token}"
                        f" at MoE TP{tp}")
    by_ep = {}
    for ep, g in sel.groupby("moe_ep_size", sort=True):
        g = g.groupby("num_tokens")["latency"].mean()
        by_ep[str(int(ep))] = {"tokens": sig(g.index.to_numpy(float), 6),
                               "us": sig(g.to_numpy(float) * 1e3)}
    return {"count": model.n_layers, "n_experts": model.n_experts,
            "top_k": model.experts_per_token, "rows": [], "by_ep": by_ep,
            "table": f"moe/vllm/{version}/moe_perf.parquet (balanced routing)"}


def measured_collectives(systems: Path) -> dict | None:
    """NCCL all_gather / reduce_scatter (fp16) by GPU count from an aiconfigurator systems
    folder (`comm/nccl/<version>/nccl_perf.parquet`; message_size is elements of the whole
    buffer, nccl-tests' size), for an MoE profile's expert-parallel dispatch and combine."""
    hits = sorted(Path(systems).glob("comm/nccl/*/nccl_perf.parquet"))
    if not hits:
        return None
    df = _parquet(hits[-1])
    need = {"op_name", "nccl_dtype", "num_gpus", "message_size", "latency"}
    if not need <= set(df.columns):
        raise UserError(f"{hits[-1]}: missing column(s) "
                        f"{', '.join(sorted(need - set(df.columns)))}")
    df = df[(df["nccl_dtype"] == "half") & df["op_name"].isin(["all_gather", "reduce_scatter"])]
    by = {}
    for (n, op), g in df.groupby(["num_gpus", "op_name"], sort=True):
        g = g.groupby("message_size")["latency"].mean()
        by.setdefault(str(int(n)), {})[str(op)] = {
            "bytes": sig(g.index.to_numpy(float) * 2, 8), "us": sig(g.to_numpy(float) * 1e3)}
    return {"source": f"aiconfigurator NCCL {hits[-1].parent.name} all_gather / reduce_scatter "
                      "(nccl-tests), measured", "by_gpus": by}


__all__ = ["moe_by_ep", "measured_collectives"]
