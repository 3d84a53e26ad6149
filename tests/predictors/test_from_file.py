from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import seqsched.predictors as predictors
from seqsched.predictors import PREDICTORS, make_predictor
from seqsched.app.predict_cli import main
from seqsched.common.errors import UserError


def test_registry_is_torch_free():
    code = ("import sys; import seqsched.predictors as predictors; assert 'torch' not in sys.modules and "
            "'transformers' not in sys.modules; print(sorted(predictors.PREDICTORS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("oracle", "max-of-samples", "noisy", "none", "from-file", "column", "proxy",
                 "llm-perception", "llm-lora"):
        assert name in PREDICTORS
    with pytest.raises(UserError, match="unknown predictor"):
        make_predictor("psychic")
    assert predictors.PredictorCost().is_free


def test_from_file_csv_and_jsonl(tiny_trace, tmp_path):
    ids = tiny_trace.ids[::-1]                      # order does not matter, ids do
    df = pd.DataFrame({"id": ids, "predicted": np.arange(len(ids)) + 10.4,
                       "predicted_p90": np.arange(len(ids)) + 50})
    df.to_csv(tmp_path / "p.csv", index=False)
    df.to_json(tmp_path / "p.jsonl", orient="records", lines=True)
    for f in ("p.csv", "p.jsonl"):
        pred = make_predictor("from-file", path=str(tmp_path / f))
        out = pred.predict(tiny_trace)
        assert out.dtype == np.int64
        assert out.tolist() == (np.arange(len(ids))[::-1] + 10).tolist()
        assert pred.predict_quantiles(tiny_trace)[0.9].tolist() == (
            np.arange(len(ids))[::-1] + 50).tolist()
        assert pred.cost(tiny_trace).is_free


def test_from_file_errors(tiny_trace, tmp_path):
    with pytest.raises(UserError, match="no such predictions file"):
        make_predictor("from-file", path=str(tmp_path / "nope.csv"))
    with pytest.raises(UserError, match="needs a file"):
        make_predictor("from-file")
    pd.DataFrame({"id": tiny_trace.ids[:3], "predicted": [1, 2, 3]}).to_csv(
        tmp_path / "few.csv", index=False)
    with pytest.raises(UserError, match="no prediction for 21 of 24"):
        make_predictor("from-file", path=str(tmp_path / "few.csv")).predict(tiny_trace)
    pd.DataFrame({"id": tiny_trace.ids, "len": 1}).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(UserError, match="needs columns 'id' and 'predicted'"):
        make_predictor("from-file", path=str(tmp_path / "cols.csv")).predict(tiny_trace)
    pd.DataFrame({"id": tiny_trace.ids, "predicted": "x"}).to_csv(tmp_path / "bad.csv",
                                                                   index=False)
    with pytest.raises(UserError, match="not a number"):
        make_predictor("from-file", path=str(tmp_path / "bad.csv")).predict(tiny_trace)


def test_column_predictor(tiny_trace):
    with pytest.raises(UserError, match="predict annotate"):
        make_predictor("column").predict(tiny_trace)
    t = tiny_trace.with_columns(predicted=np.full(len(tiny_trace), 0.2),
                                predicted_p50=np.full(len(tiny_trace), 7))
    pred = make_predictor("column")
    assert (pred.predict(t) == 1).all()             # clipped to >= 1
    assert set(pred.predict_quantiles(t)) == {0.5}


def test_cli_annotate_then_column(tiny_trace, tmp_path, capsys):
    from seqsched.traces.io import load_trace, save_trace

    save_trace(tiny_trace, tmp_path / "t.jsonl")
    rc = main(["predict", "annotate", "--trace", str(tmp_path / "t.jsonl"), "--predictor",
               "noisy", "--param", "scale=5", "--param", "seed=3", "--out",
               str(tmp_path / "a.jsonl")])
    assert rc == 0
    annotated = load_trace(tmp_path / "a.jsonl")
    expected = make_predictor("noisy", scale=5, seed=3).predict(tiny_trace)
    assert np.array_equal(make_predictor("column").predict(annotated), expected)
    # the annotated trace also works as a from-file source
    assert np.array_equal(
        make_predictor("from-file", path=str(tmp_path / "a.jsonl")).predict(tiny_trace), expected)
    rc = main(["predict", "eval", "--predictor", "column", "--data", str(tmp_path / "a.jsonl"),
               "--out", str(tmp_path / "rep")])
    assert rc == 0 and (tmp_path / "rep" / "scatter.png").is_file()
    assert "max-over-samples" in capsys.readouterr().out


def test_cli_errors(tmp_path, capsys):
    assert main(["predict", "eval", "--model", str(tmp_path), "--data", "x.jsonl"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
    assert main(["predict", "annotate", "--trace", str(tmp_path / "missing.jsonl"),
                 "--predictor", "oracle", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
