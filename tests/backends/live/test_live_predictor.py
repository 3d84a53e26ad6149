"""The length predictor runs live: its predict steps are measured on the served model and put on
the timeline; an LLM-LoRA predictor's adapter sits on the served weights (on only for the
query) and answers as `predictors.llm` does. Out-of-memory in a live run is one error line."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from live_helpers import (make_executor, prompt_trace, reference_generate,  # noqa: E402
                          small_trace)

from seqsched.app import live_cli, validate_cli  # noqa: E402
from seqsched.sim.step import Step  # noqa: E402
from seqsched.common.errors import UserError  # noqa: E402
from seqsched.sim.sequence import Seq  # noqa: E402
from seqsched.traces.io import save_trace  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_llama_builder):
    """(folder of a tiny LLaMA with tokenizer, its LoRA length-predictor folder, trace)."""
    from seqsched.predictors.llm import LoraSettings, build_tuning_set, lora_tune

    root = tmp_path_factory.mktemp("served")
    trace = prompt_trace(24)
    tiny_llama_builder(root / "m", trace)
    lora_tune(root / "m", build_tuning_set(trace), root / "lora",
              LoraSettings(steps=25, lr=2e-2, batch_size=8, r=4, alpha=8, dropout=0.0))
    return root / "m", root / "lora", trace


def _predict_durations(ex, run) -> tuple[list[float], list[float]]:
    logged = [r["duration_s"] for r in ex.log if r["kind"] == "predict"]
    st = run.steps[run.steps["kind"] == "predict"]
    return logged, (st["end_s"] - st["start_s"]).tolist()


def test_served_lora_answers_as_the_predictor_and_serving_is_unchanged(served):
    from seqsched.backends.live.model import load_model
    from seqsched.backends.live.predictor import ServedLengthPredictor
    from seqsched.predictors import make_predictor

    folder, lora, trace = served
    ref = make_predictor("llm-lora", adapter=str(lora), default=300)
    expected = ref.predict(trace)
    assert len(set(expected.tolist())) > 1 or ref.fallbacks < len(trace)   # real answers

    ex = make_executor(load_model(str(folder), "cpu", "float32"))
    sp = ServedLengthPredictor(ex, mode="lora", adapter=str(lora), default=300)
    assert np.array_equal(sp.predict(trace), expected)
    assert sp.answers == ref.answers
    # the adapter is attached to the served weights but off while serving
    plain = make_executor(load_model(str(folder), "cpu", "float32"))
    s = Seq(0, "x", 0.0, 12, 6, 6, target_tokens=6)
    ex.run(Step([s], [12], padded=True), 6, None)
    assert ex.outputs["x"] == reference_generate(plain, s, 6)
    # and on for the query: the base weights alone answer differently
    base = ServedLengthPredictor(plain, mode="perception", query=sp.query, default=300)
    base.predict(trace)
    assert base.answers != sp.answers
    # a second predictor on the same executor reuses the attached adapter
    again = ServedLengthPredictor(ex, mode="lora", adapter=str(lora), default=300)
    assert np.array_equal(again.predict(trace), expected)


def test_validate_runs_the_lora_query_live_on_the_served_model(served, tmp_path, capsys):
    folder, lora, trace = served
    path = save_trace(trace, tmp_path / "t.jsonl")
    out = tmp_path / "val"
    rc = live_cli.main(["validate", "--trace", str(path), "--model", str(folder),
                        "--predictor", "llm-lora", "--predictor-param", f"adapter={lora}",
                        "--predictor-param", "default=300", "--predictor-param", "batch_size=16",
                        "--policy", "binned", "--profile", "tiny-cpu-float32", "--threads", "1",
                        "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "predictor llm-lora: length query run live on the served model" in text
    meta = json.loads((out / "validation.json").read_text())["predictor_run"]
    assert meta["how"].startswith("length query run live") and meta["predict_steps_s_live"] > 0
    steps = pd.read_csv(out / "steps_live.csv")
    pred = steps[steps["kind"] == "predict"]
    assert list(pred["rows"]) == [16, 8]                  # batches of batch_size, timed
    assert pred["duration_s"].sum() == pytest.approx(meta["predict_steps_s_live"])
    # the live answers are the requests' predictions (what the scheduler used)
    from seqsched.predictors import make_predictor
    expected = make_predictor("llm-lora", adapter=str(lora), default=300).predict(trace)
    live = pd.read_csv(out / "records_live.csv").set_index("id").loc[trace.ids]
    assert np.array_equal(live["predicted"].to_numpy(), expected)
    # no request is scheduled before its batch's length query has finished
    first_end = pred["duration_s"].iloc[0]
    assert (live["first_scheduled_s"] >= first_end - 1e-9).all()


def test_query_cost_of_a_trace_predictor_is_timed_live_on_the_timeline(tiny64):
    from seqsched.app.run import RunConfig, simulate

    ex = make_executor(tiny64)
    trace = small_trace(20, seed=3)
    res = simulate(trace, RunConfig(policy="binned", predictor="noisy", model="tiny",
                                    predictor_params={"query_tokens": 30, "batch_size": 8,
                                                      "seed": 1}), executor=ex)
    logged, timeline = _predict_durations(ex, res)
    assert len(logged) == 3 and np.allclose(logged, timeline) and min(logged) > 0
    rows = [r for r in ex.log if r["kind"] == "predict"]
    assert all(r["iterations"] == 8 for r in rows)        # answer_tokens decoded per query
    width = int(trace.prompt_tokens[:8].max()) + 30           # left-padded prompt + query
    assert rows[0]["width"] == width and rows[0]["prefill_tokens"] == 8 * width


def test_served_predictor_needs_a_folder_with_tokenizer(tiny64, served, tmp_path):
    from seqsched.backends.live.model import load_model
    from seqsched.backends.live.predictor import ServedLengthPredictor, can_serve

    ex = make_executor(tiny64)
    assert not can_serve(ex)
    with pytest.raises(UserError, match="folder with a tokenizer"):
        ServedLengthPredictor(ex, mode="perception")
    # without a servable model, validate falls back to the predictor's own model
    pred = validate_cli.make_run_predictor("noisy", {"query_tokens": 4}, ex)
    assert not hasattr(pred, "run_live")
    # an adapter trained on another shape does not attach: one clear error
    folder, lora, _ = served
    other = tmp_path / "other"
    tiny64.model.save_pretrained(other)
    from transformers import AutoTokenizer
    AutoTokenizer.from_pretrained(folder).save_pretrained(other)
    ex2 = make_executor(load_model(str(other), "cpu", "float64"))
    with pytest.raises(UserError, match="cannot attach the LoRA adapter"):
        ServedLengthPredictor(ex2, mode="lora", adapter=str(lora))


def test_out_of_memory_in_a_live_run_is_one_error_line(tmp_path, capsys, monkeypatch):
    import torch

    from seqsched.backends.live.executor import LiveExecutor

    trace = save_trace(small_trace(4), tmp_path / "t.jsonl")
    real_run = LiveExecutor.run
    calls = {"n": 0}

    def oom_run(self, step, iterations, stop_after_s):
        calls["n"] += 1
        if calls["n"] > 2:                          # after the warm-up steps
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. "
                                         "GPU 0 has a total capacity of 79.10 GiB.\nmore")
        return real_run(self, step, iterations, stop_after_s)

    monkeypatch.setattr(LiveExecutor, "run", oom_run)
    rc = live_cli.main(["validate", "--trace", str(trace), "--profile", "tiny-cpu-float32",
                        "--threads", "1", "--out", str(tmp_path / "v"), "--no-progress"])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqsched: error:") and "\n" not in err
    assert "ran out of cpu memory" in err and "Tried to allocate 20.00 GiB" in err


def test_benchmark_binned_run_charges_the_length_query():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "live_validation.py"
    spec = importlib.util.spec_from_file_location("live_validation", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    binned = mod.POLICIES["binned"]
    assert binned["policy_params"] == {"vbs": True, "fcr": True}
    assert binned["predictor_params"]["query_tokens"] > 0   # the predictor's time is charged
