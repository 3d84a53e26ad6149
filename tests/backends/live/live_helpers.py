"""Helpers for the live-backend tests (tiny random LLaMA, no downloads)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from traces.request import Trace  # noqa: E402


def make_executor(lm, **kw):
    from backends.live.executor import LiveExecutor
    return LiveExecutor(lm, **kw)


def reference_generate(ex, seq, n: int) -> list[int]:
    """Greedy `generate` of one request alone, EOS ignored."""
    ids = torch.tensor([ex.prompt_ids(seq)])
    out = ex.model.generate(ids, max_new_tokens=n, do_sample=False, eos_token_id=None,
                            pad_token_id=0, attention_mask=torch.ones_like(ids))
    return out[0, ids.shape[1]:].tolist()


def small_trace(n: int = 24, seed: int = 0, prompt=(4, 48), output=(1, 40),
                rate: float | None = None) -> Trace:
    rng = np.random.default_rng(seed)
    arrivals = (np.cumsum(rng.exponential(1.0 / rate, n)) if rate else np.zeros(n))
    df = pd.DataFrame({"id": [f"r{i}" for i in range(n)], "arrival_s": arrivals,
                       "prompt_tokens": rng.integers(prompt[0], prompt[1], n),
                       "output_tokens": rng.integers(output[0], output[1], n)})
    return Trace(df, name="small")
