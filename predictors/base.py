"""The predictor contract: predicted output lengths plus what predicting costs.

A predictor annotates a whole trace at once (vectorised). Its cost (`PredictorCost`, defined
in the engine core, `seqsched.sim.prediction`) is a model of the serving hardware, charged to
the simulated timeline by the engine (`sim.replica`), the same on every machine that
simulates:
- where it runs, `on`: "gpu" (the served GPU: a predict step blocks the replica), "cpu" (host
  cores beside it: requests wait for their prediction, the GPU does not) or "free";
- an LLM length query (`prompt_tokens` per request prefilled on the *served* model and
  `decode_tokens` generated, in padded batches of `batch_size`: the paper's LoRA query, batches
  of 128, `max_new_tokens=8`), timed by the executor;
- or a side model (`encoder`: an encoder's shape and `encoder_tokens` per request, e.g. the
  proxy's MiniLM), timed by a roofline of its device (the served GPU unless declared);
- `seconds` (per request) is measured wall time, only for a live run where it is real.
A free predictor (oracle, from-file) returns `PredictorCost()`. Policies that never read
predictions (`reads_predictions = False`: vanilla, fcfs) get no prediction step at all.
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
