"""vLLM V1 engine semantics: `vllm serve` defaults by GPU, chunked prefill on, KV sizing with
an activation reserve or a pinned block count, and vLLM's option names on the CLI."""

from __future__ import annotations

import pytest

from seqsched.app.cli import build_parser, config_from_args
from seqsched.app.run import RunConfig, kv_tokens, policy_params, prepare
from seqsched.backends.specs import get_gpu, get_model, kv_capacity_tokens
from seqsched.backends.vllm_engine import activation_peak_bytes, batch_defaults
from seqsched.common.errors import UserError
from coretoy import trace


@pytest.mark.parametrize("gpu, expected", [("H100-SXM", (8192, 1024)), ("H200", (8192, 1024)),
                                           ("A100-80GB", (2048, 256)), ("L4", (2048, 256)),
                                           ("A100-40GB", (2048, 256))])
def test_serve_defaults_by_gpu(gpu, expected):
    # vllm/engine/arg_utils.py: >= 70 GiB and not an A100 -> 8192 / 1024, else 2048 / 256
    assert batch_defaults(get_gpu(gpu)) == expected
    p = policy_params(RunConfig(policy="sjf", gpu=gpu))
    assert (p["max_batched_tokens"], p["max_num_seqs"], p["chunked_prefill"]) == (*expected, True)


def test_without_chunked_prefill_the_budget_is_max_model_len():
    p = policy_params(RunConfig(policy="fcfs", model="llama-3-8b",
                                policy_params={"chunked_prefill": False}))
    assert p["max_batched_tokens"] == 8192 and p["max_num_seqs"] == 256
    p = policy_params(RunConfig(policy="fcfs", max_model_len=4096,
                                policy_params={"chunked_prefill": False}))
    assert p["max_batched_tokens"] == 4096


def test_max_num_seqs_default_is_capped_by_the_token_budget():
    p = policy_params(RunConfig(policy="fcfs", policy_params={"max_batched_tokens": 100}))
    assert p["max_num_seqs"] == 100


def test_static_policies_keep_their_parameters():
    assert policy_params(RunConfig(policy="vanilla")) == {}


def test_activation_peak_by_hand():
    m = get_model("llama-3-8b")
    # dense: 2048 tokens x (2 x 4096 + 3 x 14336) values x 2 bytes; sampler: 128 x 128256 x 8
    assert activation_peak_bytes(m, 2048, 128) == 2048 * 51200 * 2
    assert activation_peak_bytes(m, 64, 256) == 64 * 128256 * 8


def test_kv_sizing_reserves_the_activation_peak_and_kv_blocks_pins_it():
    cfg = RunConfig(policy="fcfs", gpu="H100-SXM", model="llama-3-8b")
    params = policy_params(cfg)
    g, m = get_gpu("H100-SXM"), get_model("llama-3-8b")
    free = g.memory_bytes * 0.9 - m.weight_bytes - activation_peak_bytes(m, 8192, 1024)
    tokens = int(free // m.kv_bytes_per_token)
    assert kv_tokens(cfg, params) == tokens - tokens % 16
    assert kv_tokens(cfg, params) < kv_capacity_tokens(g, m, 0.9)
    pinned = RunConfig(policy="fcfs", kv_blocks=1000, block_size=32)
    assert kv_tokens(pinned, policy_params(pinned)) == 32000
    # the static (HF generate) path keeps weights-only sizing
    static = RunConfig(policy="vanilla", gpu="H100-SXM", model="llama-3-8b")
    full = kv_capacity_tokens(g, m, 0.9)
    assert kv_tokens(static, {}) == full - full % 16


def test_kv_blocks_bounds_a_run():
    t = trace([("a", 0, 100, 50)])
    with pytest.raises(UserError, match="holds 128"):
        prepare(t, RunConfig(policy="fcfs", kv_blocks=8))


def _args(*argv):
    return build_parser().parse_args(["simulate", "synth:alpaca-vicuna", *argv])


def test_vllm_option_names_paste_as_they_are():
    args = _args("--max-num-seqs", "64", "--max-num-batched-tokens", "4k",
                 "--no-enable-chunked-prefill", "--gpu-memory-utilization", "0.8",
                 "--block-size", "32", "--max-model-len", "16K", "-tp", "1",
                 "--num-gpu-blocks-override", "500")
    cfg = config_from_args(args, "fcfs", {})
    assert cfg.policy_params == {"max_num_seqs": 64, "max_batched_tokens": 4000,
                                 "chunked_prefill": False}
    assert (cfg.memory_fraction, cfg.block_size, cfg.max_model_len, cfg.kv_blocks) == \
        (0.8, 32, 16384, 500)
    # a policy spec's own parameters win; static policies do not take them
    assert config_from_args(args, "sjf", {"max_num_seqs": 3}).policy_params["max_num_seqs"] == 3
    assert config_from_args(args, "vanilla", {}).policy_params == {}


def test_tensor_parallel_size_is_tp_and_prefix_caching_is_a_run_option(capsys):
    assert config_from_args(_args("--tensor-parallel-size", "2"), "fcfs", {}).tp == 2
    assert config_from_args(_args("-tp", "4", "--model", "llama-2-70b"), "fcfs", {}).tp == 4
    on = config_from_args(_args("--enable-prefix-caching"), "fcfs", {})
    assert on.prefix_caching and on.features() == ("prefix",)
    for flag in ("--no-enable-prefix-caching", "--no-prefix-caching"):
        assert not config_from_args(_args(flag), "fcfs", {}).prefix_caching
    assert not config_from_args(_args(), "fcfs", {}).prefix_caching
