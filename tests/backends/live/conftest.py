"""Live-backend tests: one CPU thread for torch (the sandbox's cores are shared)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny64():
    """The tiny random LLaMA in float64: batched and per-request greedy decoding agree."""
    pytest.importorskip("transformers")
    from seqsched.backends.live.model import load_model
    return load_model("tiny", "cpu", "float64", seed=0)
