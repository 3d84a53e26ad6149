"""The prediction steps a replica runs for a predictor that costs time (sim/prediction.py
prices them): a batch on the served GPU blocks the replica's timeline (`predict`); a host-CPU
predictor is a SimPy process of its own beside it (`predict_beside`)."""

from __future__ import annotations

from seqsched.sim.sequence import Seq
from seqsched.sim.step import Step


def predict(rep, seqs: list[Seq]):
    """A prediction batch on the served GPU: the replica's timeline waits for it. A side
    model is timed by its cost model, an LLM query by the executor; an executor that runs
    a predictor itself (live, `executor.predictor`) measures either."""
    cost = rep.predictions.cost
    start = rep.env.now
    if cost.side_model and getattr(rep.executor, "predictor", None) is None:
        duration = cost.batch_seconds([s.idx for s in seqs])
        iterations = 1
    else:
        tokens = cost.prompt_tokens if cost.prompt_tokens is not None else cost.encoder_tokens
        step = Step(seqs, [int(tokens[s.idx]) if tokens is not None else s.prompt_tokens
                           for s in seqs], padded=True, kind="predict")
        iterations = max(cost.decode_tokens, 1)
        result = rep.executor.run(step, iterations, None)
        duration = result.duration_s
    yield rep.env.timeout(duration)
    rep.engine.log_step(rep.index, start, rep.env.now, "predict", len(seqs), iterations,
                        0, 0, rep.kv.used_tokens)
    for s in seqs:
        rep.waiting.add(s)


def predict_beside(rep):
    """on="cpu": a predictor process of its own on the host, batching whatever is pending
    when it is free; each batch joins the waiting queue when done (kind "predict-cpu")."""
    q = rep.predictions
    while True:
        if not q.pending:
            rep.predictor_wake = rep.env.event()
            yield rep.predictor_wake
            rep.predictor_wake = None
            continue
        seqs = q.take()
        q.in_flight = len(seqs)
        start = rep.env.now
        duration = q.cost.batch_seconds([s.idx for s in seqs])
        q.ready_at = start + duration
        yield rep.env.timeout(duration)
        rep.engine.log_step(rep.index, start, rep.env.now, "predict-cpu", len(seqs), 1,
                            0, 0, rep.kv.used_tokens)
        for s in seqs:
            rep.waiting.add(s)
        q.in_flight = 0
        rep.wake()
