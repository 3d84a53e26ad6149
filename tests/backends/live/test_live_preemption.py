"""LiveExecutor under KV pressure: a recompute-preempted request resumes from its prompt plus
the output it kept (vLLM semantics, as the simulation models it), so the live run makes the
simulation's decisions step for step, emits the forced lengths and keeps greedy outputs equal
to `generate`. An executor that cannot resume still falls back to restarts with a warning.

The tiny random LLaMA runs in float32 here: recomputing kept output tokens in one prefill
gives the same greedy tokens as decoding them one by one (checked on every request)."""

from __future__ import annotations

import warnings

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from live_helpers import (fraction_for_tokens, make_executor, pressure_trace,  # noqa: E402
                          reference_generate)

from seqsched.backends.live.executor import LiveExecutor  # noqa: E402
from seqsched.sim.step import Step  # noqa: E402
from seqsched.app.run import RunConfig, simulate  # noqa: E402
from seqsched.sim.sequence import Seq  # noqa: E402

STEP_KEYS = ["kind", "rows", "iterations", "prefill_tokens", "decode_tokens"]


@pytest.fixture(scope="module")
def tiny32():
    from seqsched.backends.live.model import load_model
    return load_model("tiny", "cpu", "float32", seed=0)


def pressure_config(chunked: bool = False, budget: int = 8192, **params) -> RunConfig:
    """fcfs with a 400-token KV cache: an offline burst of 16 requests must preempt."""
    return RunConfig(policy="fcfs", policy_params={"chunked_prefill": chunked,
                                                   "max_batched_tokens": budget, **params},
                     model="tiny", memory_fraction=fraction_for_tokens(400),
                     kv_sizing="weights")


def record_resumes(ex) -> list[tuple[str, int, int]]:
    """Wrap `ex.prefill_ids` to log (id, prompt tokens, recomputed) of every resumed prefill."""
    seen: list[tuple[str, int, int]] = []
    inner = ex.prefill_ids

    def spy(seq):
        ids = inner(seq)
        if seq.recomputed:
            assert ids[seq.prompt_tokens:] == ex.outputs[seq.id][:seq.recomputed]
            seen.append((seq.id, seq.prompt_tokens, seq.recomputed))
        return ids

    ex.prefill_ids = spy
    return seen


def assert_same_decisions(live, sim) -> None:
    lr, sr = live.records.set_index("id"), sim.records.set_index("id")
    for col in ("preemptions", "attempts", "generated_tokens", "recomputed_tokens",
                "wasted_tokens"):
        assert (lr[col] == sr.loc[lr.index, col]).all(), col
    assert live.summary["preemptions"] == sim.summary["preemptions"]
    assert live.summary["batches"] == sim.summary["batches"]
    assert live.steps[STEP_KEYS].equals(sim.steps[STEP_KEYS])


def assert_outputs(ex, trace) -> None:
    for rid, p, o in zip(trace.ids, trace.prompt_tokens, trace.output_tokens):
        assert len(ex.outputs[rid]) == o, rid                      # forced length, exactly
        s = Seq(0, rid, 0.0, int(p), int(o), int(o))
        assert ex.outputs[rid] == reference_generate(ex, s, int(o)), rid


@pytest.mark.parametrize("chunked, budget", [(False, 8192), (True, 24)])
def test_resumed_preemption_matches_simulation(tiny32, chunked, budget):
    trace = pressure_trace()
    cfg = pressure_config(chunked, budget)
    ex = make_executor(tiny32)
    assert ex.resumes_preempted
    resumes = record_resumes(ex)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)           # no restart fallback
        live = simulate(trace, cfg, executor=ex)
    sim = simulate(trace, cfg)
    assert live.summary["preemptions"] > 0
    assert_same_decisions(live, sim)
    assert (live.records["wasted_tokens"] == 0).all()             # nothing thrown away
    assert resumes                                                 # kept output re-prefilled
    if chunked:
        assert (ex.log_frame()["prefill_tokens"] <= budget).all()
    assert_outputs(ex, trace)
    assert ex.cached_requests == 0


def test_restart_policy_matches_simulation(tiny32):
    trace = pressure_trace()
    cfg = pressure_config(preemption="restart")
    ex = make_executor(tiny32)
    resumes = record_resumes(ex)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        live = simulate(trace, cfg, executor=ex)
    sim = simulate(trace, cfg)
    assert live.summary["preemptions"] > 0 and live.records["wasted_tokens"].sum() > 0
    assert_same_decisions(live, sim)
    assert resumes == []
    assert_outputs(ex, trace)


class NoResumeExecutor(LiveExecutor):
    """A LiveExecutor that does not declare resume support (as any such executor)."""

    resumes_preempted = False


def test_executor_without_resume_falls_back_to_restart(tiny32):
    trace = pressure_trace()
    ex = NoResumeExecutor(tiny32, name="live:no-resume")
    with pytest.warns(RuntimeWarning, match="live:no-resume cannot resume"):
        live = simulate(trace, pressure_config(), executor=ex)
    sim = simulate(trace, pressure_config(preemption="restart"))   # what it falls back to
    assert live.summary["preemptions"] > 0 and live.records["wasted_tokens"].sum() > 0
    assert_same_decisions(live, sim)
    assert_outputs(ex, trace)


def test_natural_mode_outputs_survive_preemption(tiny32):
    trace = pressure_trace()
    probe = make_executor(tiny32)
    simulate(trace, RunConfig(policy="fcfs", model="tiny"), executor=probe)
    # an EOS id that some requests emit part-way: natural lengths differ from the trace's
    firsts = [out[len(out) // 2] for out in probe.outputs.values() if len(out) > 2]
    eos = max(set(firsts), key=firsts.count)
    saved = tiny32.eos_token_id
    tiny32.eos_token_id = eos
    try:
        free = make_executor(tiny32, length_mode="natural")
        simulate(trace, RunConfig(policy="fcfs", model="tiny"), executor=free)
        tight = make_executor(tiny32, length_mode="natural")
        res = simulate(trace, pressure_config(), executor=tight)
    finally:
        tiny32.eos_token_id = saved
    assert res.summary["preemptions"] > 0
    stopped = [rid for rid, out in free.outputs.items() if out[-1] == eos]
    assert stopped                                            # EOS really ended some requests
    for rid in trace.ids:
        assert tight.outputs[rid] == free.outputs[rid], rid
    rec = res.records.set_index("id")
    for rid in trace.ids:
        assert rec.loc[rid, "generated_tokens"] == len(tight.outputs[rid])


def test_resume_by_hand_and_missing_output(tiny32):
    """Drive the executor as the replica does: prefill, decode, preempt (release, keep the
    output), resume with the prompt + output prefilled in two chunks, decode on."""
    ex = make_executor(tiny32)
    s = Seq(0, "h0", 0.0, 9, 12, 12, target_tokens=12)
    ex.run(Step([s], [9]), 1, None)
    s.prefilled, s.generated = 9, 1
    ex.run(Step([s], [0], max_iterations=4), 4, None)
    s.generated += 4
    ex.release(s)                                  # preempted: KV freed, output kept
    s.recomputed, s.prefilled = s.generated, 0
    assert ex.cached_requests == 0 and len(ex.outputs["h0"]) == 5
    ex.run(Step([s], [8]), 1, None)                # 8 of 14 prefill tokens: emits nothing
    s.prefilled = 8
    assert ex.cached_tokens("h0") == 8 and len(ex.outputs["h0"]) == 5
    ex.run(Step([s], [6]), 1, None)                # the rest: emits output token 6
    s.prefilled, s.generated = 14, 6
    assert ex.cached_tokens("h0") == 14
    ex.run(Step([s], [0], max_iterations=6), 6, None)
    assert ex.outputs["h0"] == reference_generate(ex, s, 12)
    assert ex.log[-2]["prefill_tokens"] == 6 and ex.log[-3]["prefill_tokens"] == 8

    other = make_executor(tiny32)                  # never saw h0's output
    t = Seq(1, "h1", 0.0, 9, 12, 12, target_tokens=12, generated=3, recomputed=3)
    with pytest.raises(ValueError, match="kept 0"):
        other.run(Step([t], [12]), 1, None)
