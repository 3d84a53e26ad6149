"""The length-aware policies drive the live executor through the same Step contract: mlfq's
priority preemption and gittins with re-prediction on a tiny random LLaMA keep every greedy
output equal to a per-request `generate` (a displaced row resumes by recompute)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from live_helpers import make_executor, reference_generate, small_trace  # noqa: E402

from seqsched.app.run import RunConfig, simulate
from seqsched.sim.sequence import Seq


@pytest.mark.parametrize("policy, params", [
    ("mlfq", {"levels": "2,4,64", "prompt_weight": 0, "max_num_seqs": 2}),
    ("gittins", {"preemptive": True, "repredict_every": 3, "max_num_seqs": 2}),
])
def test_live_outputs_survive_priority_preemption(tiny64, policy, params):
    ex = make_executor(tiny64)
    trace = small_trace(10, seed=6, output=(4, 16), rate=300.0)
    res = simulate(trace, RunConfig(policy=policy, policy_params=params, model="tiny",
                                    predictor="noisy", predictor_params={"scale": 4.0}),
                   executor=ex)
    rec = res.records.set_index("id")
    if policy == "mlfq":
        assert res.summary["preemptions"] > 0
    else:
        assert (res.steps["kind"] == "repredict").any()
    for rid, p, o in zip(trace.ids, trace.prompt_tokens, trace.output_tokens):
        assert rec.loc[rid, "generated_tokens"] == o
        s = Seq(0, rid, 0.0, int(p), int(o), int(o))
        assert ex.outputs[rid] == reference_generate(ex, s, int(o)), rid
