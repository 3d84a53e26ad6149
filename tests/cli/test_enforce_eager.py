"""vLLM's `enforce_eager` (`--enforce-eager`): no CUDA graphs, so no capture sizes and no DP
padding (vllm/config/vllm.py:847 and :1024 in 0.19.0). Read from a recorded run's metadata
(`engine_kwargs` or `resolved_config.model_config`), overridden by the flag, named in the
validate report; a DP lockstep group then runs each rank at its own token count."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seqsched.app.cli import main
from seqsched.app.run import RunConfig
from seqsched.app.serving_setup import dp_padding
from seqsched.app.vllm_args import add_vllm_options, vllm_settings
from seqsched.sim.lockstep import DPPadding
from seqsched.traces.recorded import read_recorded

from tests.cli.test_validate_measured import write_llmservingsim


def write_run(folder: Path, engine: dict, resolved: dict | None = None) -> Path:
    """Two short requests, the second after the first has finished (the LLMServingSim layout
    of test_validate_measured.write_llmservingsim), with `resolved` as resolved_config."""
    rows = [(0.0, 24, 3, 1000.0, 1000.5, 1001.0), (5.0, 30, 3, 1005.0, 1005.4, 1005.8)]
    write_llmservingsim(folder, rows, engine={"model": "meta-llama/Llama-3-8B",
                                              "max_num_seqs": 4, "max_num_batched_tokens": 64,
                                              **engine})
    if resolved is not None:
        meta = json.loads((folder / "meta.json").read_text())
        meta["resolved_config"] = resolved
        (folder / "meta.json").write_text(json.dumps(meta))
    return folder


def flags(*argv: str):
    p = argparse.ArgumentParser()
    add_vllm_options(p)
    return p.parse_args(list(argv))


def test_reader_takes_enforce_eager_from_kwargs_or_the_resolved_config(tmp_path):
    assert read_recorded(write_run(tmp_path / "a", {"enforce_eager": True})
                         ).engine["enforce_eager"] is True
    resolved = {"model_config": {"enforce_eager": True}}
    assert read_recorded(write_run(tmp_path / "b", {}, resolved)).engine["enforce_eager"]
    # what the user passed wins over what vLLM resolved; absent stays absent (graphs on)
    both = read_recorded(write_run(tmp_path / "c", {"enforce_eager": False}, resolved))
    assert both.engine["enforce_eager"] is False
    assert "enforce_eager" not in read_recorded(write_run(tmp_path / "d", {})).engine


def test_flag_overrides_the_metadata():
    assert vllm_settings(flags(), {"enforce_eager": True})[1]["enforce_eager"] is True
    assert vllm_settings(flags("--no-enforce-eager"), {"enforce_eager": True}
                         )[1]["enforce_eager"] is False
    assert vllm_settings(flags("--enforce-eager"), {})[1]["enforce_eager"] is True
    assert "enforce_eager" not in vllm_settings(flags(), {})[1]


def test_eager_means_no_capture_sizes_so_no_dp_padding():
    params = {"max_num_seqs": 4, "max_batched_tokens": 64}
    graphs = dp_padding(RunConfig(dp_lockstep=2), params)
    # vLLM's default sizes for max_num_seqs 4: [1, 2, 4] + range(8, ...) up to min(8, 64)
    assert graphs.capture_sizes == (1, 2, 4, 8) and graphs.padded([3, 5]) == [8, 8]
    eager = dp_padding(RunConfig(dp_lockstep=2, enforce_eager=True), params)
    assert eager == DPPadding() and eager.padded([3, 5]) == [3, 5]


def test_validate_reports_eager_from_the_metadata(tmp_path, capsys):
    src = write_run(tmp_path / "run", {"enforce_eager": True})
    out = tmp_path / "out"
    assert main(["validate", "--measured", str(src), "--gpu", "A100-80GB",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    settings = json.loads((out / "settings.json").read_text())["simulated_with"]
    assert settings["enforce_eager"].startswith("on")
    line = next(x for x in (out / "report.md").read_text().splitlines()
                if x.startswith("Simulated with: "))
    assert "enforce_eager on (no CUDA graphs" in line
    out2 = tmp_path / "out2"            # the flag turns it off; the report says nothing then
    assert main(["validate", "--measured", str(src), "--gpu", "A100-80GB", "--out", str(out2),
                 "--no-enforce-eager"]) == 0
    assert "enforce_eager" not in (out2 / "report.md").read_text()
