"""Predictors that need no model: oracle, the paper's max-of-samples GT, a seeded noisy oracle,
`none` (every request is assumed to run to the cap, the paper's vanilla), and `FixedPredictor`
(an array computed elsewhere, for code that schedules one trace on precomputed predictions)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from seqsched.predictors.base import PredictorCost
from seqsched.common.params import is_number, is_whole
from seqsched.traces.request import MAX_TOKENS, Trace, TraceError

SAMPLE_PREFIX = "len_t"  # per-temperature length columns, e.g. len_t0.0, len_t0.7


def sample_columns(trace: Trace) -> list[str]:
    return sorted(c for c in trace.df.columns if c.startswith(SAMPLE_PREFIX))


def max_of_samples(trace: Trace) -> np.ndarray:
    """The paper's "ground truth" for scheduling: the max length over sampled generations."""
    if "max_of_samples" in trace.df.columns:
        return trace.df["max_of_samples"].to_numpy(dtype=np.int64)
    cols = sample_columns(trace)
    if not cols:
        raise TraceError(f"{trace.name}: predictor max-of-samples needs a 'max_of_samples' column "
                         f"or per-sample columns '{SAMPLE_PREFIX}<T>'; use --predictor oracle")
    return trace.df[cols].max(axis=1).to_numpy(dtype=np.int64)


def _check_int(name: str, value, low: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not is_whole(value) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")


@dataclass
class OraclePredictor:
    name: str = "oracle"

    def predict(self, trace: Trace) -> np.ndarray:
        return trace.output_tokens.copy()

    def cost(self, trace: Trace) -> PredictorCost:
        return PredictorCost()


@dataclass
class MaxOfSamplesPredictor:
    name: str = "max-of-samples"

    def predict(self, trace: Trace) -> np.ndarray:
        return np.maximum(max_of_samples(trace), 1)

    def cost(self, trace: Trace) -> PredictorCost:
        return PredictorCost()


@dataclass
class NonePredictor:
    """No prediction: every request is assumed to need `default` tokens."""

    default: int = 512
    name: str = "none"

    def __post_init__(self) -> None:
        _check_int("default", self.default, 1)

    def predict(self, trace: Trace) -> np.ndarray:
        return np.full(len(trace), self.default, dtype=np.int64)

    def cost(self, trace: Trace) -> PredictorCost:
        return PredictorCost()


@dataclass
class NoisyPredictor:
    """A base length (oracle or max-of-samples) plus seeded additive noise.

    `dist` is "laplace" (scale = mean absolute error), "normal" (scale = standard deviation) or
    "lognormal" (multiplicative, scale = sigma of log error). Predictions are rounded and clipped
    to [1, clip]. `query_tokens` > 0 charges an LLM-style length query per request: the request's
    prompt plus `query_tokens` instruction tokens prefilled, `answer_tokens` generated, in batches
    of `batch_size` — the paper's self-perception cost (batches of 128, 8 new tokens).
    """

    dist: str = "laplace"
    scale: float = 62.0
    base: str = "oracle"
    seed: int = 0
    clip: int | None = None
    query_tokens: int = 0
    answer_tokens: int = 8
    batch_size: int = 128
    name: str = "noisy"

    def __post_init__(self) -> None:
        if self.dist not in ("laplace", "normal", "lognormal"):
            raise ValueError(f"unknown noise distribution {self.dist!r}; "
                             "use laplace, normal or lognormal")
        if not is_number(self.scale) or not self.scale >= 0:
            raise ValueError(f"noise scale must be a number >= 0, got {self.scale!r}")
        _check_int("seed", self.seed, 0)
        _check_int("clip", self.clip, 1, allow_none=True)
        _check_int("query_tokens", self.query_tokens, 0)
        _check_int("answer_tokens", self.answer_tokens, 0)
        _check_int("batch_size", self.batch_size, 1)
        if self.base not in ("oracle", "max-of-samples"):
            raise ValueError(f"unknown noisy base {self.base!r}; use oracle or max-of-samples")

    def predict(self, trace: Trace) -> np.ndarray:
        truth = trace.output_tokens if self.base == "oracle" else max_of_samples(trace)
        rng = np.random.default_rng(self.seed)
        if self.dist == "laplace":
            pred = truth + rng.laplace(0.0, self.scale, size=len(truth))
        elif self.dist == "normal":
            pred = truth + rng.normal(0.0, self.scale, size=len(truth))
        else:
            pred = truth * np.exp(rng.normal(0.0, self.scale, size=len(truth)))
        # clipped before the cast: a huge scale must not wrap around int64
        return np.clip(np.rint(pred), 1, self.clip or MAX_TOKENS).astype(np.int64)

    def cost(self, trace: Trace) -> PredictorCost:
        if self.query_tokens <= 0:
            return PredictorCost()
        return PredictorCost(prompt_tokens=trace.prompt_tokens + self.query_tokens,
                             decode_tokens=self.answer_tokens, batch_size=self.batch_size)


@dataclass
class FixedPredictor:
    """Predictions computed elsewhere for one trace (trace order), charged `charge` on the
    timeline (free by default). Not a CLI predictor: `from-file` reads predictions by id."""

    predictions: np.ndarray
    charge: PredictorCost = field(default_factory=PredictorCost)
    name: str = "fixed"

    def predict(self, trace: Trace) -> np.ndarray:
        if len(self.predictions) != len(trace):
            raise ValueError(f"{len(self.predictions)} fixed predictions for a trace of "
                             f"{len(trace)} requests")
        return np.asarray(self.predictions, dtype=np.int64).copy()

    def cost(self, trace: Trace) -> PredictorCost:
        return self.charge


PREDICTORS = {
    "oracle": OraclePredictor,
    "max-of-samples": MaxOfSamplesPredictor,
    "noisy": NoisyPredictor,
    "none": NonePredictor,
}
