"""Bad input at the API level: `simulate` raises `sim.errors.UserError` (the one exception the
CLI turns into a single error line) with a message that names the problem."""

from __future__ import annotations

import pandas as pd
import pytest

from coretoy import small_kv_config, toy_executor, trace
from seqsched.common.errors import UserError
from seqsched.app.run import RunConfig, simulate
from seqsched.traces.request import Trace

OK = [("a", 0, 8, 4), ("b", 0.5, 16, 2)]


def user_error(cfg: RunConfig, rows=OK, **kw) -> str:
    with pytest.raises(UserError) as e:
        simulate(trace(rows), cfg, **kw)
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("cfg, needles", [
    (RunConfig(policy="bogus"), ["unknown policy 'bogus'", "fcfs", "vanilla"]),
    (RunConfig(gpu="V100"), ["unknown GPU 'V100'", "A100-80GB"]),
    (RunConfig(model="gpt-9"), ["unknown model 'gpt-9'", "llama-7b"]),
    (RunConfig(predictor="psychic"), ["unknown predictor 'psychic'", "oracle"]),
    (RunConfig(backend="tpu-pod"), ["unknown backend preset 'tpu-pod'", "paper-a100"]),
    (RunConfig(router="telepathy"), ["unknown router 'telepathy'", "round-robin"]),
    (RunConfig(policy="vanilla", policy_params={"batch_size": 0}), ["batch-size must be > 0"]),
    (RunConfig(policy="sorted", policy_params={"batch_size": -3}), ["batch-size must be > 0",
                                                                    "-3"]),
    (RunConfig(policy="binned", policy_params={"batch_size": 0}), ["batch-size must be > 0"]),
    (RunConfig(policy="sorted", policy_params={"pool_size": 0}), ["pool-size must be > 0"]),
    (RunConfig(policy="vanilla", policy_params={"max_new_tokens": 0}),
     ["max-new-tokens must be > 0"]),
    (RunConfig(policy="binned", policy_params={"bin_width": 0}), ["bin-width must be > 0"]),
    (RunConfig(policy="binned", policy_params={"vbs_table": "magic"}),
     ["unknown vbs-table 'magic'"]),
    (RunConfig(policy="fcfs", policy_params={"max_num_seqs": 0}), ["max-num-seqs must be > 0"]),
    (RunConfig(policy="sjf", policy_params={"max_batched_tokens": -1}),
     ["max-batched-tokens must be > 0"]),
    # regression: values of the wrong type ended in a TypeError traceback or ran silently
    (RunConfig(policy="vanilla", policy_params={"batch_size": "abc"}),
     ["batch-size must be a whole number", "'abc'"]),
    (RunConfig(policy="vanilla", policy_params={"batch_size": 1.5}),
     ["batch-size must be a whole number", "1.5"]),
    (RunConfig(policy="binned", policy_params={"vbs": "maybe"}), ["vbs must be true or false"]),
    (RunConfig(policy="binned", policy_params={"max_batch_size": "x"}),
     ["max-batch-size must be a whole number"]),
    (RunConfig(policy="fcfs", policy_params={"chunked_prefill": 3}),
     ["chunked-prefill must be true or false"]),
    (RunConfig(policy="sjf", policy_params={"max_num_seqs": "abc"}),
     ["max-num-seqs must be a whole number"]),
    (RunConfig(policy="fcfs", policy_params={"preemption": "page"}),
     ["unknown preemption 'page'", "recompute", "swap"]),
    (RunConfig(policy="vanilla", policy_params={"bogus": 1}),
     ["policy vanilla has no parameter bogus", "batch_size"]),
    (RunConfig(predictor="noisy", predictor_params={"bogus": 1}), ["noisy", "bogus"]),
    (RunConfig(predictor="noisy", predictor_params={"dist": "cauchy"}), ["cauchy"]),
    # regression: these ended in tracebacks inside numpy or the engine (or ran on)
    (RunConfig(predictor="noisy", predictor_params={"scale": "abc"}),
     ["noise scale must be a number >= 0", "'abc'"]),
    (RunConfig(predictor="noisy", predictor_params={"seed": "abc"}), ["seed must be a whole"]),
    (RunConfig(predictor="noisy", predictor_params={"clip": "abc"}), ["clip must be a whole"]),
    (RunConfig(predictor="noisy", predictor_params={"clip": 0}), ["clip must be a whole"]),
    (RunConfig(predictor="noisy", predictor_params={"query_tokens": "x"}),
     ["query_tokens must be a whole"]),
    (RunConfig(predictor="noisy", predictor_params={"query_tokens": 4, "batch_size": 0}),
     ["batch_size must be a whole number >= 1"]),
    (RunConfig(predictor="noisy", predictor_params={"answer_tokens": -1}),
     ["answer_tokens must be a whole number >= 0"]),
    (RunConfig(predictor="none", predictor_params={"default": "abc"}), ["default must be"]),
    (RunConfig(predictor="none", predictor_params={"default": 0}), ["default must be"]),
    (RunConfig(replicas=0), ["replicas must be >= 1"]),
    (RunConfig(max_new_tokens=0), ["max-new-tokens must be >= 1"]),
    (RunConfig(memory_fraction=0.0), ["memory-fraction must be in (0, 1]"]),
    (RunConfig(memory_fraction=1.5), ["memory-fraction must be in (0, 1]", "1.5"]),
    (RunConfig(block_size=0), ["block-size must be >= 1"]),
    (RunConfig(model="llama-2-70b", gpu="A100-80GB"), ["llama-2-70b", "does not fit",
                                                       "A100-80GB"]),
])
def test_bad_config_is_a_user_error(cfg, needles):
    msg = user_error(cfg)
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_request_longer_than_kv_capacity():
    # 256 tokens of KV; request "big" needs 200 + 100 = 300
    msg = user_error(small_kv_config(256), rows=[("ok", 0, 10, 10), ("big", 0, 200, 100)])
    assert "request big needs 300 tokens of KV cache" in msg
    assert "holds 256" in msg and "tiny" in msg and "--max-new-tokens" in msg


def test_request_longer_than_kv_capacity_is_fine_when_capped():
    res = simulate(trace([("big", 0, 200, 100)]), small_kv_config(256, max_new_tokens=50),
                   executor=toy_executor())
    assert res.records["generated_tokens"].tolist() == [50]


def test_empty_trace():
    with pytest.raises(UserError, match="the trace is empty"):
        Trace(pd.DataFrame({"id": [], "arrival_s": [], "prompt_tokens": [],
                            "output_tokens": []}))


def test_predictor_returning_wrong_length():
    class Short:
        name = "short"

        def predict(self, t):
            return [1]

        def cost(self, t):
            from seqsched.predictors.base import PredictorCost
            return PredictorCost()
    msg = user_error(RunConfig(), predictor=Short())
    assert "predictor short returned 1 predictions for 2 requests" in msg


def test_prompt_longer_than_token_budget_without_chunked_prefill():
    # chunked prefill is on by default (vLLM V1); turned off, a prompt must fit one budget
    cfg = RunConfig(policy="fcfs", policy_params={"chunked_prefill": False,
                                                  "max_batched_tokens": 8192})
    msg = user_error(cfg, rows=[("long", 0, 9000, 5)])
    assert "9000" in msg and "8192" in msg


def test_request_above_max_model_len_is_a_user_error():
    msg = user_error(RunConfig(policy="fcfs", max_model_len=4096), rows=[("long", 0, 4000, 100)])
    assert "4100" in msg and "max-model-len 4096" in msg


def test_static_batch_too_big_for_kv_is_a_user_error():
    rows = [(f"r{i}", 0, 500, 400) for i in range(32)]
    msg = user_error(RunConfig(policy="vanilla", gpu="L4", policy_params={"batch_size": 32}),
                     rows=rows, executor=toy_executor())
    assert "batch" in msg
