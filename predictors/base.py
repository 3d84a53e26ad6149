"""The predictor contract: predicted output lengths plus what predicting costs.

A predictor annotates a whole trace at once (vectorised). Its cost is charged to the
simulated timeline by the engine (`sim.replica`), as the paper charges the LLM's length query:
- `prompt_tokens` (per request) are prefilled on the *served* model, and `decode_tokens` are
  generated, in padded batches of `batch_size` (the paper's LoRA query: batches of 128,
  `max_new_tokens=8`);
- `seconds` (per request) is measured wall time of a side model (e.g. a proxy encoder), added
  to the replica's timeline as is.
A free predictor (oracle, from-file) returns `PredictorCost()`.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from seqsched.sim.prediction import PredictorCost  # noqa: F401  (re-exported)
from seqsched.traces.request import Trace


class Predictor(Protocol):
    name: str

    def predict(self, trace: Trace) -> np.ndarray:
        """Predicted output tokens (int64, >= 1), one per request, in trace order."""

    def cost(self, trace: Trace) -> PredictorCost:
        """What predicting this trace costs on the timeline."""
