"""An MoE model from aiconfigurator's tables: its measured FusedMoE layer by expert-parallel
size, looked up at the tokens a rank gathers; the router GEMM in place of the dense MLP;
hand-computed on small tables written here."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from seqsched.backends.import_aiconfigurator import import_aiconfigurator
from seqsched.backends.import_aiconfigurator_moe import moe_by_ep
from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.moe_profile import expert_parallel
from seqsched.backends.specs import get_gpu
from seqsched.common.errors import UserError
from tests.backends.test_vidur_aiconf_import import TINY, write_aiconf

MOE = dataclasses.replace(TINY, n_experts=4, experts_per_token=2, d_ff=32)


def write_moe(root, version="0.19.0"):
    """One rank's MoE layer: (10 + 0.5 x tokens) us at EP1, (6 + 0.25 x tokens) us at EP2;
    rows of other shapes, dtypes and routings that must be ignored."""
    d = root / "moe" / "vllm" / version
    d.mkdir(parents=True)
    base = {"hidden_size": 64, "inter_size": 32, "num_experts": 4, "topk": 2,
            "moe_tp_size": 1, "moe_dtype": "bfloat16", "distribution": "balanced"}
    rows = []
    for t in (1, 16, 256):
        rows.append({**base, "num_tokens": t, "moe_ep_size": 1, "latency": (10 + 0.5 * t) / 1e3})
        rows.append({**base, "num_tokens": t, "moe_ep_size": 2, "latency": (6 + 0.25 * t) / 1e3})
        rows.append({**base, "num_tokens": t, "moe_ep_size": 1, "distribution": "power_law_1.2",
                     "latency": 1.0})
        rows.append({**base, "num_tokens": t, "moe_ep_size": 1, "moe_dtype": "fp8",
                     "latency": 1.0})
        rows.append({**base, "num_tokens": t, "moe_ep_size": 1, "inter_size": 64,
                     "latency": 1.0})
    pd.DataFrame(rows).to_parquet(d / "moe_perf.parquet")
    return root


def test_moe_table_by_ep_size(tmp_path):
    sec = moe_by_ep(write_moe(tmp_path), MOE, 1, "0.19.0")
    assert sec["by_ep"]["1"] == {"tokens": [1.0, 16.0, 256.0], "us": [10.5, 18.0, 138.0]}
    assert sec["by_ep"]["2"]["us"] == [6.25, 10.0, 70.0]
    assert sec["count"] == 2 and (sec["n_experts"], sec["top_k"]) == (4, 2)
    with pytest.raises(UserError, match="no bf16 MoE of hidden 64"):
        moe_by_ep(tmp_path, dataclasses.replace(MOE, n_experts=8), 1, "0.19.0")
    with pytest.raises(UserError, match="no such file"):
        moe_by_ep(tmp_path, MOE, 1, "0.24.0")


def test_aic_moe_profile_is_the_hand_sum(tmp_path):
    root = write_aiconf(tmp_path / "sys")
    write_moe(root)
    gpu = get_gpu("L4")
    prof = import_aiconfigurator(root, MOE, 1, gpu)
    assert {"gate_up_proj", "down_proj", "act_fn"}.isdisjoint(prof["dense"])
    assert prof["dense"]["router_gemm"]["count"] == 2
    m = kernel_profile_from_dict(prof)
    dense = kernel_profile_from_dict({**prof, "moe": None})
    # 8 tokens on one GPU: EP1 table at 8 tokens, 10 + 0.5 x 8 = 14 us a layer, x 2 layers
    diff = m.decode_times(8, 8 * 100, 1)[0] - dense.decode_times(8, 8 * 100, 1)[0]
    assert diff == pytest.approx(2 * 14e-6, rel=1e-4)
    # the router GEMM (n 4 experts, k 64) at 8 rows, extrapolated from the fixture's n 64 and
    # 128 nodes; its 1 + 1e-6 m n k us is linear in n, so exactly 1 + 1e-6 x 8 x 4 x 64
    router = next(op for op in m.dense if op.name == "router_gemm")
    assert router.seconds(8) == pytest.approx(2 * (1 + 1e-6 * 8 * 4 * 64) * 1e-6, rel=1e-3)
    # expert parallelism over 2 GPUs gathering 2 DP ranks: EP2 table at 2 x 8 = 16 gathered
    # tokens (10 us), plus the dispatch / combine over the link (no NCCL table here)
    ep = expert_parallel(m.moe, 2, 2, 10.0, 5.0, 64)
    comm = 2 * 5.0 + 0.5 * 16 * ((64 + 4) * 2 + 64 * 2) / 10e9 * 1e6
    assert ep.seconds(np.array([8.0]))[0] == pytest.approx(2 * (10.0 + comm) * 1e-6, rel=1e-6)
    with pytest.raises(UserError, match="expert-parallel sizes 1, 2, not 4"):
        expert_parallel(m.moe, 4, 4, 10.0, 5.0, 64)
    assert any("MoE" in n for n in prof["provenance"]["notes"])
