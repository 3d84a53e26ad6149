"""What predicting costs, as the engine charges it to the simulated timeline.

The contract lives in the engine core because the replica charges it; predictors (a floor
above) build it. See `seqsched.predictors.base` for how each field is charged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PredictorCost:
    prompt_tokens: np.ndarray | None = None
    decode_tokens: int = 0
    batch_size: int = 128
    seconds: np.ndarray | None = None

    @property
    def is_free(self) -> bool:
        no_tokens = self.prompt_tokens is None or not np.any(self.prompt_tokens)
        no_seconds = self.seconds is None or not np.any(self.seconds)
        return no_tokens and no_seconds
