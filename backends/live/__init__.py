"""The live backend: a real LLaMA-family model (PyTorch + transformers) driven by the same Policy
objects as the simulator. torch and transformers are imported lazily, so `import backends.live`
stays cheap; touch `LiveExecutor` or `load_model` to load them.
"""

from __future__ import annotations

__all__ = ["LiveExecutor", "LoadedModel", "load_model", "llama_config"]


def __getattr__(name: str):
    if name == "LiveExecutor":
        from seqsched.backends.live.executor import LiveExecutor
        return LiveExecutor
    if name in ("LoadedModel", "load_model", "llama_config"):
        from seqsched.backends.live import model
        return getattr(model, name)
    raise AttributeError(name)
