"""Helpers for the live-backend tests (tiny random LLaMA, no downloads)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from seqsched.traces.request import Trace  # noqa: E402


def make_executor(lm, **kw):
    from seqsched.backends.live.executor import LiveExecutor
    return LiveExecutor(lm, **kw)


def reference_generate(ex, seq, n: int) -> list[int]:
    """Greedy `generate` of one request alone, EOS ignored."""
    ids = torch.tensor([ex.prompt_ids(seq)])
    out = ex.model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None,
                            pad_token_id=0, attention_mask=torch.ones_like(ids))
    return out[0, ids.shape[1]:].tolist()


def fraction_for_tokens(tokens: int) -> float:
    """The memory fraction that leaves `tokens` of KV cache for the tiny model on an A100
    with weights-only KV sizing (`kv_sizing="weights"`, what a live validate uses)."""
    from seqsched.backends.specs import get_gpu, get_model
    m, g = get_model("tiny"), get_gpu("A100-80GB")
    return (m.weight_bytes + tokens * m.kv_bytes_per_token) / g.memory_bytes


def pressure_trace() -> Trace:
    """16 requests arriving at once; with a 400-token KV cache (`fraction_for_tokens(400)`)
    fcfs preempts several of them part-way through their output."""
    return small_trace(16, seed=5, prompt=(20, 60), output=(10, 40))


def small_trace(n: int = 24, seed: int = 0, prompt=(4, 48), output=(1, 40),
                rate: float | None = None) -> Trace:
    rng = np.random.default_rng(seed)
    arrivals = (np.cumsum(rng.exponential(1.0 / rate, n)) if rate else np.zeros(n))
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "arrival_s": arrivals,
                       "prompt_tokens": rng.integers(prompt[0], prompt[1], n),
                       "output_tokens": rng.integers(output[0], output[1], n)})
    return Trace(df, name="small")


WORDS = ("write explain list describe summarize translate classify name give poem essay story "
         "words sentence paragraph short long detailed one three five ten about the a of "
         "for and in to cat dog city river science history music").split()


def prompt_trace(n: int = 24, seed: int = 0) -> Trace:
    """Requests with Vicuna-style prompt text and sampled lengths (LLM predictors need text)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        instr = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 9))))
        prompt = ("A chat between a curious user and an artificial intelligence assistant. "
                  f"USER: ### Instruction:\n{instr}\n\n### Response: ASSISTANT:")
        base = 20 + 15 * len(instr.split()) + (200 if "essay" in instr else 0)
        lens = np.maximum(base + rng.integers(-10, 30, size=4), 1)
        rows.append({"id": f"q{i}", "arrival_s": 0.0, "prompt_tokens": 40 + len(instr.split()),
                     "output_tokens": int(lens[0]) // 8 + 1, "prompt": prompt,
                     **{f"len_t{t}": int(v) for t, v in zip(("0.0", "0.3", "0.5", "0.7"), lens)}})
    return Trace(pd.DataFrame(rows), name="prompts")
