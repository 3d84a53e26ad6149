"""Hypothesis fuzz of the whole CLI: random small traces (any value in any field, in CSV, JSON
Lines or JSON) under random option values. Whatever comes in, `seqsched` exits 0 or 2 and
never prints a traceback; a 2 comes with exactly one error line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultkit import assert_user_error, run

CELL = st.one_of(
    st.integers(-5, 3000), st.integers(-2 ** 70, 2 ** 70),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=4), st.lists(st.integers(0, 9), max_size=2),
    st.sampled_from(["12", "1e3", " 7 ", "0x10", "NaN", "", "true"]))
GOOD = st.fixed_dictionaries({"arrival_s": st.floats(0, 100), "prompt_tokens":
                              st.integers(1, 600), "output_tokens": st.integers(1, 300)})
ROW = st.one_of(GOOD, st.fixed_dictionaries({"arrival_s": CELL, "prompt_tokens": CELL,
                                             "output_tokens": CELL}))

OPTIONS = st.fixed_dictionaries({}, optional={
    "--seed": st.integers(-3, 2 ** 64).map(str),
    "--rate": st.one_of(st.floats(-1, 50), st.sampled_from([0.0, 1e-300, 1e300])).map(str),
    "--max-new-tokens": st.integers(-2, 700).map(str),
    "--policy": st.sampled_from(["vanilla", "sorted", "binned", "fcfs", "sjf", "srpt", "ltr",
                                 "bogus", "binned:vbs=false:fcr=true"]),
    "--batch-size": st.integers(-1, 40).map(str),
    "--replicas": st.integers(-1, 3).map(str),
    "--memory-fraction": st.floats(-0.5, 1.5).map(str),
    "--sample": st.integers(-1, 8).map(str),
    "--predictor": st.sampled_from(["oracle", "none", "noisy", "max-of-samples"]),
    "--gpu": st.sampled_from(["A100-80GB", "L4", "H200"]),
    "--max-output-tokens": st.integers(-1, 50).map(str),
    "--arrival": st.sampled_from(["offline", "poisson", "gamma", "replay"]),
    "--cv": st.floats(-1, 5).map(str),
})


def write_trace(folder: Path, rows: list[dict], container: str) -> Path:
    path = folder / f"t.{container}"
    if container == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif container == "json":
        path.write_text(json.dumps(rows))
    else:
        pd.DataFrame(rows).to_csv(path, index=False)
    return path


def check(code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert code in (0, 2), (code, err)
    if code == 2:
        assert_user_error(code, err)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(rows=st.lists(ROW, min_size=1, max_size=6),
       container=st.sampled_from(["jsonl", "json", "csv"]), options=OPTIONS,
       write_out=st.booleans())
def test_random_traces_and_options(capsys, rows, container, options, write_out):
    with tempfile.TemporaryDirectory() as tmp:
        path = write_trace(Path(tmp), rows, container)
        argv = ["simulate", str(path), "--no-progress"]
        for flag, value in options.items():
            argv += [f"{flag}={value}"]
        if write_out:
            argv += ["--out", str(Path(tmp) / "out")]
        code, _, err = run(capsys, *argv)
        check(code, err)
        if write_out:
            assert (Path(tmp) / "out").is_dir() == (code == 0)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=300), suffix=st.sampled_from(["", ".gz", ".csv", ".json"]))
def test_random_bytes_as_a_trace(capsys, data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"t{suffix}"
        path.write_bytes(data)
        code, _, err = run(capsys, "trace", "inspect", str(path), "--no-plot")
        check(code, err)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(grid=st.lists(st.text(alphabet="rateseedn_=,.-0123456789xyz", max_size=14),
                     min_size=1, max_size=2))
def test_random_grid_items(capsys, grid):
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["sweep", "synth:uniform", "-n", "4", "--workers", "1", "--no-progress",
                "--out", str(Path(tmp) / "sw")]
        for item in grid:
            argv += [f"--grid={item}"]
        code, _, err = run(capsys, *argv)
        check(code, err)
