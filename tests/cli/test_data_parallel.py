"""vLLM's data and expert parallelism as `vllm serve` takes them (`--data-parallel-size`,
`--enable-expert-parallel`): D replicas behind vLLM's DP balancer, an MoE's ranks in lockstep,
and under expert parallelism each GPU holding only its share of the experts (more KV room)."""

from __future__ import annotations

import json

import pytest

from seqsched.app.cli import main
from seqsched.app.run import RunConfig, ep_group, kv_tokens
from seqsched.app.vllm_args import apply_to_config
from seqsched.backends.specs import ModelSpec, get_gpu, get_model, kv_capacity_tokens, \
    weight_bytes_per_gpu

SYNTH = ["synth:azure-conv", "-n", "30", "--rate", "4", "--no-progress"]

# 2 layers, d 8, 2 heads (2 KV), SwiGLU ff 4, 4 experts, vocab 10, untied embeddings
TINY_MOE = ModelSpec("tiny-moe", 2, 8, 2, 2, 4, 10, 64, n_experts=4, experts_per_token=2)


def test_weight_bytes_per_gpu_by_hand():
    m = TINY_MOE
    # attention 8 x (8 + 16) + 8 x 8 = 256, experts 4 x 3 x 8 x 4 = 384, router 32, norms 16
    assert m.layer_params == 256 + 384 + 32 + 16
    total = (2 * 10 * 8 + 2 * 688 + 8) * 2                     # bytes, bf16
    assert m.weight_bytes == total
    experts = 2 * 384 * 2
    assert weight_bytes_per_gpu(m) == total
    assert weight_bytes_per_gpu(m, tp=2) == total / 2
    assert weight_bytes_per_gpu(m, tp=1, ep=2) == total - experts / 2
    assert weight_bytes_per_gpu(m, tp=2, ep=2) == (total - experts) / 2 + experts / 4
    dense = get_model("llama-3.1-8b")
    assert weight_bytes_per_gpu(dense, tp=2, ep=4) == dense.weight_bytes / 2   # no experts


def test_expert_parallel_frees_the_other_ranks_experts_for_kv():
    gpu, m = get_gpu("RTX-PRO-6000"), get_model("qwen3-30b-a3b")
    one, two = kv_capacity_tokens(gpu, m, 0.9), kv_capacity_tokens(gpu, m, 0.9, ep=2)
    experts = m.n_layers * m.n_experts * m.expert_params * m.dtype_bytes
    per_token = 2 * m.n_layers * m.kv_dim * m.dtype_bytes
    assert two - one == pytest.approx(experts / 2 / per_token, abs=1)
    assert experts / m.weight_bytes > 0.9                  # most of the model is experts
    assert 2.0 < two / one < 2.4


def test_data_parallel_size_becomes_replicas_and_moe_lockstep():
    dense = apply_to_config(RunConfig(model="llama-3.1-8b"), {}, {"data_parallel_size": 2})
    assert (dense.replicas, dense.router, dense.dp_lockstep) == (2, "vllm-dp", 0)
    moe = apply_to_config(RunConfig(model="qwen3-30b-a3b"), {},
                          {"data_parallel_size": 2, "expert_parallel": True})
    assert (moe.replicas, moe.router, moe.dp_lockstep, moe.expert_parallel) == \
        (2, "vllm-dp", 2, True)
    assert ep_group(moe) == 2 and ep_group(dense) == 1
    chosen = apply_to_config(RunConfig(model="llama-3.1-8b", router="least-loaded"), {},
                             {"data_parallel_size": 2})
    assert chosen.router == "least-loaded"                  # a router the user chose stays
    same = apply_to_config(RunConfig(model="llama-3.1-8b", replicas=2), {},
                           {"data_parallel_size": 2})
    assert same.replicas == 2
    params = {"max_batched_tokens": 2048, "max_num_seqs": 128}
    base = RunConfig(model="qwen3-30b-a3b", gpu="RTX-PRO-6000", replicas=2, dp_lockstep=2)
    ep = apply_to_config(base, {}, {"expert_parallel": True})
    assert kv_tokens(ep, params) > 2 * kv_tokens(base, params)


def test_simulate_with_vllm_dp_and_ep_flags(tmp_path, capsys):
    common = [*SYNTH, "--gpu", "RTX-PRO-6000", "--model", "qwen3-30b-a3b", "--profile",
              "roofline"]
    assert main(["simulate", *common, "--replicas", "2", "--router", "vllm-dp",
                 "--dp-lockstep", "2", "--out", str(tmp_path / "a")]) == 0
    assert main(["simulate", *common, "-dp", "2", "--out", str(tmp_path / "b")]) == 0
    assert main(["simulate", *common, "-dp", "2", "--enable-expert-parallel",
                 "--out", str(tmp_path / "c")]) == 0
    capsys.readouterr()
    a, b, c = (json.loads(next((tmp_path / x).glob("summary_*.json")).read_text())
               for x in "abc")
    assert a["summary"] == b["summary"] and a["kv_capacity_tokens"] == b["kv_capacity_tokens"]
    assert b["config"]["replicas"] == 2 and b["config"]["dp_lockstep"] == 2
    assert c["config"]["expert_parallel"] is True
    assert c["kv_capacity_tokens"] > 2 * b["kv_capacity_tokens"]


def test_data_parallel_size_below_one_is_one_line(capsys):
    assert main(["simulate", *SYNTH, "--data-parallel-size", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--data-parallel-size must be >= 1" in err[0]
