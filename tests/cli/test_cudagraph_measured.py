"""`validate --measured` replays a vLLM run with its CUDA graphs (backends/cuda_graphs.py):
padding on unless the run or the flag says otherwise, the capture sizes and mode from the
run's resolved compilation config where its metadata has them."""

from __future__ import annotations

import json

from seqsched.app.cli import main
from seqsched.app.measured_cli import measured_config
from seqsched.traces.recorded import read_recorded

from tests.cli.test_enforce_eager import flags, write_run

COMPILED = {"compilation_config": {"cudagraph_capture_sizes": [1, 2, 4, 8, 16],
                                   "cudagraph_mode": [2, 1], "max_cudagraph_capture_size": 16,
                                   "backend": "inductor"}}


def config(folder, *argv):
    args = flags(*argv)
    for key, value in {"gpu": "A100-80GB", "model": None, "policy": None, "param": [],
                       "predictor": "oracle", "predictor_param": [], "profile": None,
                       "seed": 0, "max_new_tokens": None}.items():
        setattr(args, key, value)
    return measured_config(args, read_recorded(folder))


def test_reader_keeps_the_graph_fields_of_the_compilation_config(tmp_path):
    run = read_recorded(write_run(tmp_path / "a", {}, COMPILED))
    assert run.engine["compilation_config"] == {
        "cudagraph_capture_sizes": [1, 2, 4, 8, 16], "cudagraph_mode": [2, 1],
        "max_cudagraph_capture_size": 16}
    assert "compilation_config" not in read_recorded(write_run(tmp_path / "b", {})).engine


def test_replay_pads_by_default_and_the_flag_turns_it_off(tmp_path):
    src = write_run(tmp_path / "run", {}, COMPILED)
    on = config(src)
    assert on.cudagraph_padding is True
    assert on.compilation_config["cudagraph_capture_sizes"] == [1, 2, 4, 8, 16]
    assert config(src, "--no-cudagraph-padding").cudagraph_padding is False


def test_validate_names_padding_off_only(tmp_path, capsys):
    src = write_run(tmp_path / "run", {})
    out, off = tmp_path / "out", tmp_path / "off"
    assert main(["validate", "--measured", str(src), "--gpu", "A100-80GB",
                 "--out", str(out)]) == 0
    assert main(["validate", "--measured", str(src), "--gpu", "A100-80GB", "--out", str(off),
                 "--no-cudagraph-padding"]) == 0
    capsys.readouterr()
    assert "cudagraph_padding" not in json.loads((out / "settings.json").read_text()
                                                 )["simulated_with"]
    assert json.loads((off / "settings.json").read_text())["simulated_with"][
        "cudagraph_padding"] == "off"
