"""Building a run's requests (`Seq`s) and what its policy knows of their lengths; `app/run.py`
calls these from `prepare`."""

from __future__ import annotations

import numpy as np

from seqsched.predictors.distribution import length_distribution
from seqsched.predictors.reprediction import make_repredictor
from seqsched.sim.sequence import Seq
from seqsched.traces.request import Trace


def make_seqs(trace: Trace, predicted: np.ndarray, cap: int | None) -> list[Seq]:
    out = trace.output_tokens
    target = np.minimum(out, cap) if cap is not None else out
    prompts = trace.df["prompt"].tolist() if "prompt" in trace.df else [None] * len(trace)
    return [Seq(i, rid, a, p, o, int(pr), target_tokens=int(t), prompt=pt, truncated=bool(t < o))
            for i, (rid, a, p, o, pr, pt, t) in enumerate(zip(
                trace.ids.tolist(), trace.arrival_s.tolist(), trace.prompt_tokens.tolist(),
                out.tolist(), predicted.tolist(), prompts, target.tolist()))]


def attach_length_knowledge(policy, config, predictor, trace: Trace,
                            predicted: np.ndarray, seqs: list[Seq]):
    """Give each request its predicted length distribution where the policy ranks by one
    (or re-predicts from it), and build the re-predictor the policy asks for."""
    repredictor = make_repredictor(policy, predicted, trace.output_tokens, config.seed)
    needs = None
    if getattr(policy, "needs_distribution", False):
        needs = f"policy {config.policy} ranks by"
    elif repredictor is not None and repredictor.mode == "conditional":
        needs = "repredict=conditional conditions"
    if needs:
        dist = length_distribution(predictor, trace, needs)
        for s, d in zip(seqs, dist):
            s.dist = d
    return repredictor
