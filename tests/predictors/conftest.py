"""Fixtures: a tiny random LLaMA with a tokenizer trained in-process, and small traces."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seqsched.traces.request import Trace

WORDS = ("write explain list describe summarize translate classify name give poem essay story "
         "words sentence paragraph short long detailed one three five ten about the a of "
         "for and in to cat dog city river science history music").split()


def make_trace(n: int = 24, seed: int = 0) -> Trace:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        instr = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 9))))
        prompt = ("A chat between a curious user and an artificial intelligence assistant. "
                  "USER: Below is an instruction that describes a task. Write a response that "
                  f"appropriately completes the request.\n\n### Instruction:\n{instr}\n\n"
                  "### Response: ASSISTANT:")
        base = 20 + 15 * len(instr.split()) + (200 if "essay" in instr else 0)
        lens = np.maximum(base + rng.integers(-10, 30, size=4), 1)
        rows.append({"id": f"r{i}", "arrival_s": 0.0, "prompt_tokens": 40 + len(instr.split()),
                     "output_tokens": int(lens[0]), "prompt": prompt,
                     **{f"len_t{t}": int(v) for t, v in zip(("0.0", "0.3", "0.5", "0.7"), lens)}})
    return Trace(pd.DataFrame(rows), name="tiny")


@pytest.fixture(scope="session")
def tiny_trace() -> Trace:
    return make_trace()


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory, tiny_trace, tiny_llama_builder):
    """A folder with a 2-layer random LlamaForCausalLM and its locally trained BPE tokenizer."""
    return tiny_llama_builder(tmp_path_factory.mktemp("tiny_llama"), tiny_trace)
