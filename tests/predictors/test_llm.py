"""LLM self-perception: parsing, the tuning set, LoRA tuning end to end on a tiny LLaMA."""

from __future__ import annotations

import numpy as np
import pytest

from seqsched.predictors import make_predictor
from seqsched.predictors.llm import (LENGTH_QUERY, LoraSettings, build_tuning_set, lora_tune,
                            parse_length, with_query)
from seqsched.common.errors import UserError

torch = pytest.importorskip("torch")
pytest.importorskip("peft")


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("text,expected", [
    ("150", 150), (" 200 tokens", 200), ("About 1,200 words", 512), ("Length: 75\nSure", 75),
    ("0", 1), ("roughly 12.5", 12), ("I cannot tell", None), ("", None), ("two hundred", None),
])
def test_parse_length(text, expected):
    assert parse_length(text, max_tokens=512) == expected


def test_with_query_goes_into_the_user_turn():
    assert with_query("USER: hi ASSISTANT:", " Q?") == "USER: hi Q? ASSISTANT:"
    assert with_query("plain prompt", " Q?") == "plain prompt Q?"


def test_tuning_set_uses_rounded_max_over_samples(tiny_trace):
    ts = build_tuning_set(tiny_trace)
    cols = [c for c in tiny_trace.df.columns if c.startswith("len_t")]
    mx = tiny_trace.df[cols].max(axis=1).to_numpy()
    assert [int(e["answer"]) for e in ts] == (np.ceil(mx / 50) * 50).astype(int).tolist()
    assert all(LENGTH_QUERY in e["prompt"] and e["prompt"].endswith("ASSISTANT:") for e in ts)
    greedy = build_tuning_set(tiny_trace, target="greedy", round_to=0)
    assert [int(e["answer"]) for e in greedy] == tiny_trace.output_tokens.tolist()


def test_lora_end_to_end(tiny_llama, tiny_trace, tmp_path):
    ts = build_tuning_set(tiny_trace)
    report = lora_tune(tiny_llama, ts, tmp_path / "lora",
                       LoraSettings(steps=25, lr=2e-2, batch_size=8, r=4, alpha=8, dropout=0.0))
    assert report["last_loss"] < report["first_loss"]
    assert (tmp_path / "lora" / "adapter" / "adapter_config.json").is_file()

    pred = make_predictor("llm-lora", adapter=str(tmp_path / "lora"), default=300)
    out = pred.predict(tiny_trace)
    assert out.dtype == np.int64 and out.shape == (len(tiny_trace),) and (out >= 1).all()
    parsed = [parse_length(a, 512) for a in pred.answers]
    assert pred.fallbacks == sum(v is None for v in parsed)
    assert all(o == 300 for o, v in zip(out, parsed) if v is None)

    texts = pred.query_prompts(tiny_trace)[:3]
    on, off = pred.logits(texts, adapter=True), pred.logits(texts, adapter=False)
    assert not torch.allclose(on, off)
    # adapter off equals the untouched base model
    from seqsched.predictors.llm import load_causal_lm
    base, tok = load_causal_lm(tiny_llama)
    with torch.inference_mode():
        ref = base(**tok(texts, return_tensors="pt", padding=True)).logits[:, -1]
    assert torch.allclose(off, ref, atol=1e-5)

    # reload from the folder: same answers
    again = make_predictor("llm-lora", adapter=str(tmp_path / "lora"), default=300)
    assert np.array_equal(again.predict(tiny_trace), out)

    cost = pred.cost(tiny_trace)
    q = len(tok(LENGTH_QUERY, add_special_tokens=False)["input_ids"])
    assert np.array_equal(cost.prompt_tokens, tiny_trace.prompt_tokens + q)
    assert cost.decode_tokens == 8 and cost.batch_size == 128


def test_perception_never_crashes_on_random_answers(tiny_llama, tiny_trace):
    pred = make_predictor("llm-perception", model=str(tiny_llama), default=256,
                          max_new_tokens=4)
    out = pred.predict(tiny_trace)
    assert (out >= 1).all() and len(out) == len(tiny_trace)
    assert 0 <= pred.fallbacks <= len(tiny_trace)
    assert pred.fallbacks == sum(parse_length(a) is None for a in pred.answers)
    assert pred.cost(tiny_trace).decode_tokens == 4


def test_llm_bad_input(tmp_path):
    with pytest.raises(UserError, match="adapter"):
        make_predictor("llm-lora")
    with pytest.raises(UserError, match="not a LoRA"):
        make_predictor("llm-lora", adapter=str(tmp_path))
    with pytest.raises(UserError, match="model"):
        make_predictor("llm-perception")


def test_llm_dtype_and_device(tiny_llama, tiny_trace):
    """bfloat16 weights load as asked; a CUDA device without a GPU or a bad dtype is one
    clear error (a 7B predictor is meant to run in half precision on the served GPU)."""
    import torch

    from seqsched.predictors.llm import load_causal_lm

    model, _ = load_causal_lm(tiny_llama, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    pred = make_predictor("llm-perception", model=str(tiny_llama), dtype="bfloat16",
                          max_new_tokens=2)
    assert len(pred.predict(tiny_trace)) == len(tiny_trace)
    with pytest.raises(UserError, match="dtype"):
        load_causal_lm(tiny_llama, dtype="float13")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            load_causal_lm(tiny_llama, device="cuda")
