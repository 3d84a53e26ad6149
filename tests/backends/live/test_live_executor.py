"""LiveExecutor on a tiny random LLaMA: static and continuous runs driven by the real engine
and policies; forced lengths exact; continuous greedy outputs equal per-request `generate`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from live_helpers import (fraction_for_tokens, make_executor, reference_generate,  # noqa: E402
                          small_trace)

from seqsched.sim.step import Step, StepResult
from seqsched.common.errors import UserError
from seqsched.app.run import RunConfig, simulate
from seqsched.sim.sequence import Seq


def _seq(i, prompt, out, **kw):
    return Seq(i, f"s{i}", 0.0, prompt, out, out, target_tokens=out, **kw)


def _check_forced(ex, trace, result):
    rec = result.records.set_index("id")
    for rid, out in zip(trace.ids, trace.output_tokens):
        assert len(ex.outputs[rid]) == out, rid
        assert rec.loc[rid, "generated_tokens"] == out


def test_static_vanilla_forced_lengths_and_generate(tiny64):
    ex = make_executor(tiny64)
    trace = small_trace(20, seed=1)
    res = simulate(trace, RunConfig(policy="vanilla", policy_params={"batch_size": 8},
                                    model="tiny"), executor=ex)
    _check_forced(ex, trace, res)
    assert res.summary["batches"] == 3
    assert ex.cached_requests == 0            # padded steps keep nothing
    # left-padded batched greedy == each request alone
    seqs = [Seq(i, r, 0.0, p, o, o) for i, (r, p, o) in
            enumerate(zip(trace.ids, trace.prompt_tokens, trace.output_tokens))]
    for s in seqs[:6]:
        assert ex.outputs[s.id] == reference_generate(ex, s, s.output_tokens)
    log = ex.log_frame()
    assert len(log) == 3 and (log["padded"]).all()
    assert (log["duration_s"] >= log["first_iteration_s"]).all()
    assert (log["iterations"] == log["iterations_asked"]).all()


def test_static_binned_fcr_recompute_keeps_lengths(tiny64):
    ex = make_executor(tiny64)
    trace = small_trace(32, seed=2, output=(1, 120))
    res = simulate(trace, RunConfig(policy="binned", policy_params={"bin_width": 20},
                                    predictor="noisy",
                                    predictor_params={"scale": 40.0, "seed": 3},
                                    model="tiny", max_new_tokens=100), executor=ex)
    assert res.summary["fcr_recompute_ratio"] > 0           # some rows failed and re-ran
    rec = res.records.set_index("id")
    for rid, out in zip(trace.ids, trace.output_tokens):
        assert len(ex.outputs[rid]) == min(out, 100)
        assert rec.loc[rid, "generated_tokens"] == min(out, 100)


def test_continuous_outputs_equal_generate(tiny64):
    ex = make_executor(tiny64)
    trace = small_trace(24, seed=4, rate=200.0)   # staggered arrivals: joins and leaves
    res = simulate(trace, RunConfig(policy="fcfs", model="tiny"), executor=ex)
    _check_forced(ex, trace, res)
    log = ex.log_frame()
    assert (~log["padded"]).all()
    assert log["rows"].nunique() > 2                         # the batch really changed
    assert ((log["prefill_tokens"] > 0) & (log["decode_rows"] > 0)).any()   # mixed steps
    for rid, p, o in zip(trace.ids, trace.prompt_tokens, trace.output_tokens):
        s = Seq(0, rid, 0.0, int(p), int(o), int(o))
        assert ex.outputs[rid] == reference_generate(ex, s, int(o)), rid
    assert ex.cached_requests == 0                           # every finished row released


def test_continuous_chunked_prefill_and_preemption(tiny64):
    ex = make_executor(tiny64)
    trace = small_trace(16, seed=5, prompt=(20, 60), output=(10, 40), rate=400.0)
    cfg = RunConfig(policy="fcfs", policy_params={"chunked_prefill": True,
                                                  "max_batched_tokens": 24},
                    model="tiny", memory_fraction=fraction_for_tokens(400), kv_sizing="weights")
    res = simulate(trace, cfg, executor=ex)
    assert res.summary["preemptions"] > 0
    log = ex.log_frame()
    assert (log["prefill_tokens"] <= 24).all()
    _check_forced(ex, trace, res)
    for rid, p, o in list(zip(trace.ids, trace.prompt_tokens, trace.output_tokens))[:8]:
        s = Seq(0, rid, 0.0, int(p), int(o), int(o))
        assert ex.outputs[rid] == reference_generate(ex, s, int(o)), rid


def test_stop_after_and_first_iteration(tiny64):
    ex = make_executor(tiny64)
    seqs = [_seq(i, 6 + i, 50) for i in range(3)]
    r = ex.run(Step(seqs, [s.prompt_tokens for s in seqs]), 1, None)
    assert r.iterations == 1 and 0 < r.first_iteration_s <= r.duration_s
    for s in seqs:
        s.prefilled, s.generated = s.prompt_tokens, 1
    r = ex.run(Step(seqs, [0, 0, 0], max_iterations=20), 20, 0.0)
    assert r.iterations == 1                                 # stop at the first boundary
    for s in seqs:
        s.generated += 1
        assert ex.cached_tokens(s.id) == s.prompt_tokens + s.generated - 1
    r = ex.run(Step(seqs, [0, 0, 0], max_iterations=5), 5, 1e9)
    assert r.iterations == 5 and len(ex.iteration_s) == 5
    for s in seqs:
        assert len(ex.outputs[s.id]) == 7
        ex.release(s)
    assert ex.cached_requests == 0


def test_natural_mode_stops_at_eos(tiny64):
    forced = make_executor(tiny64)
    s = _seq(0, 9, 12)
    forced.run(Step([s], [9], padded=True), 12, None)
    eos = forced.outputs[s.id][4]
    first = forced.outputs[s.id].index(eos)
    tiny64.eos_token_id, saved = eos, tiny64.eos_token_id
    try:
        nat = make_executor(tiny64, length_mode="natural")
        # padded: the batch stops when every row is done
        r = nat.run(Step([_seq(0, 9, 12)], [9], padded=True), 12, None)
        assert r.eos_at == {"s0": first} and r.iterations == first + 1
        assert nat.outputs["s0"] == forced.outputs["s0"][:first + 1]
        # continuous: the step ends at the iteration that emitted EOS
        a, b = _seq(0, 9, 12), _seq(1, 7, 12)
        r = nat.run(Step([a, b], [9, 7]), 1, None)
        for x in (a, b):
            x.prefilled, x.generated = x.prompt_tokens, 1
        if first > 0:
            r = nat.run(Step([a, b], [0, 0], max_iterations=11), 11, None)
            assert r.eos_at["s0"] == first - 1 and r.iterations == first
    finally:
        tiny64.eos_token_id = saved


def test_predict_step_times_a_padded_query(tiny64):
    ex = make_executor(tiny64)
    seqs = [_seq(i, 10, 5) for i in range(4)]
    r = ex.run(Step(seqs, [30, 25, 40, 12], padded=True, kind="predict"), 8, None)
    assert isinstance(r, StepResult) and r.iterations == 8
    assert not any(s.id in ex.outputs for s in seqs)
    assert ex.log[-1]["kind"] == "predict" and ex.log[-1]["width"] == 40

    class CountingPredictor:
        name = "count"
        calls = 0

        def predict(self, trace):
            CountingPredictor.calls += 1
            return trace.prompt_tokens + 1

    ex2 = make_executor(tiny64, predictor=CountingPredictor())
    r = ex2.run(Step(seqs, [30, 25, 40, 12], padded=True, kind="predict"), 8, None)
    assert CountingPredictor.calls == 1 and r.duration_s > 0
    assert ex2.predictions == {s.id: 11 for s in seqs}


def test_decode_row_without_cache_is_an_error(tiny64):
    ex = make_executor(tiny64)
    s = _seq(0, 5, 5, prefilled=5, generated=2)
    with pytest.raises(ValueError, match="decode row"):
        ex.run(Step([s], [0]), 1, None)


@pytest.mark.parametrize("model, device, dtype, match", [
    ("no-such-shape", "cpu", "float32", "unknown model"),
    ("./missing/folder", "cpu", "float32", "not found"),
    ("tiny", "cuda", "float16", "CUDA is not available"),
    ("tiny", "tpu", "float32", "unknown device"),
    ("tiny", "cpu", "int3", "unknown dtype"),
    ("llama-2-70b", "cpu", "float64", "free"),
])
def test_bad_model_inputs_are_user_errors(model, device, dtype, match):
    import torch
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA present")
    from seqsched.backends.live.model import load_model
    with pytest.raises(UserError, match=match):
        load_model(model, device, dtype)


def test_folder_model_roundtrip(tmp_path, tiny64):
    from seqsched.backends.live.model import load_model
    tiny64.model.save_pretrained(tmp_path / "m")
    lm = load_model(str(tmp_path / "m"), "cpu", "float64")
    assert lm.source == "folder" and lm.shape["n_layers"] == 2
    ex = make_executor(lm)
    s = _seq(0, 8, 6)
    ex.run(Step([s], [8], padded=True), 6, None)
    ref = make_executor(tiny64)
    ref.run(Step([_seq(0, 8, 6)], [8], padded=True), 6, None)
    assert ex.outputs["s0"] == ref.outputs["s0"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="config.json"):
        load_model(str(tmp_path / "empty"), "cpu", "float32")


def test_iteration_times_are_positive(tiny64):
    ex = make_executor(tiny64)
    seqs = [_seq(i, 8, 6) for i in range(2)]
    ex.run(Step(seqs, [8, 8], padded=True), 6, None)
    assert len(ex.iteration_s) == 6 and np.all(np.asarray(ex.iteration_s) > 0)


def test_thread_clock_and_bad_options(tiny64):
    ex = make_executor(tiny64, clock="thread")
    seqs = [_seq(i, 8, 4) for i in range(2)]
    r = ex.run(Step(seqs, [8, 8], padded=True), 4, None)
    assert r.iterations == 4 and 0 < r.first_iteration_s <= r.duration_s
    with pytest.raises(UserError, match="clock"):
        make_executor(tiny64, clock="sundial")
    with pytest.raises(UserError, match="length mode"):
        make_executor(tiny64, length_mode="maybe")
