"""vLLM bench's arrivals (traces/bench_arrivals.py): the ramp-up rate schedule and the send
times, hand-computed; the flags on the command line; a bench result JSON that records a
ramp-up (written here). vLLM v0.19.0 `vllm/benchmarks/serve.py`: rates :218-240, delays
:283-330, checks :1640-1655, result keys :1854-1857."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from seqsched.app.cli import main
from seqsched.traces.bench_arrivals import RampUp, bench_arrivals, ramp_up
from seqsched.traces.errors import TraceError
from seqsched.traces.recorded import read_recorded


def test_linear_and_exponential_rates_by_hand():
    # progress i / (N - 1): 0, 1/4, 1/2, 3/4, 1
    assert RampUp("linear", 1, 5).rates(5).tolist() == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert RampUp("exponential", 1, 16).rates(5).tolist() == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert RampUp("exponential", 2, 8).rates(3).tolist() == [2.0, 4.0, 8.0]
    assert RampUp("linear", 3, 7).rates(1).tolist() == [3.0]        # max(N - 1, 1): i = 0


def test_even_gaps_follow_the_ramp_and_are_not_rescaled():
    # burstiness inf: gap i = 1 / rate_i; cumulative 1, 3/2, 11/6, 25/12, 137/60 (harmonic)
    t = bench_arrivals(5, math.inf, math.inf, 0, RampUp("linear", 1, 5))
    expected = np.cumsum([float(Fraction(1, k)) for k in range(1, 6)])
    assert np.allclose(t, expected, rtol=0, atol=1e-15)
    assert t[-1] == pytest.approx(137 / 60)          # not rescaled to N / rate (no rate)
    # a constant rate is rescaled so the last request goes out at N / rate: 4 at 2/s -> 2.0
    assert bench_arrivals(4, 2.0, math.inf, 0).tolist() == [0.5, 1.0, 1.5, 2.0]
    assert bench_arrivals(3, math.inf, 1.0, 0).tolist() == [0.0, 0.0, 0.0]


def test_seeded_gamma_gaps_use_each_requests_rate():
    # Poisson (burstiness 1): gap i = Exp(1) draw i / rate_i, draws from numpy's legacy
    # generator seeded as vLLM seeds it; rates 1, 2, 4 (exponential 1 -> 4 over 3)
    z = np.random.RandomState(7).standard_gamma(1.0, size=3)
    t = bench_arrivals(3, math.inf, 1.0, 7, RampUp("exponential", 1, 4))
    assert t == pytest.approx(np.cumsum(z / [1.0, 2.0, 4.0]), rel=1e-15)
    # burstiness 4: Gamma(4, 1 / (4 rate_i)) = standard_gamma(4) / (4 rate_i)
    z4 = np.random.RandomState(7).standard_gamma(4.0, size=3)
    t4 = bench_arrivals(3, math.inf, 4.0, 7, RampUp("linear", 2, 6))
    assert t4 == pytest.approx(np.cumsum(z4 / (4 * np.array([2.0, 4.0, 6.0]))), rel=1e-15)
    # without a ramp the same draws are rescaled: last at N / rate = 3 / 2
    t2 = bench_arrivals(3, 2.0, 1.0, 7)
    assert t2[-1] == 1.5 and t2 == pytest.approx(np.cumsum(z) * 1.5 / z.sum(), rel=1e-15)


def vllm_loop(n, strategy, start, end, burstiness, seed):
    """vLLM's get_request delays, one scalar draw at a time (serve.py:283-315)."""
    np.random.seed(seed)
    delays = []
    for i in range(n):
        p = i / max(n - 1, 1)
        rate = start + (end - start) * p if strategy == "linear" else start * (end / start) ** p
        delays.append(1.0 / rate if burstiness == math.inf else
                      np.random.gamma(shape=burstiness, scale=1.0 / (rate * burstiness)))
    for i in range(1, n):
        delays[i] += delays[i - 1]
    return delays


@pytest.mark.parametrize("strategy,start,end", [("linear", 1, 20), ("exponential", 1, 64),
                                                ("exponential", 3, 7)])
def test_the_same_doubles_as_vllms_scalar_loop(strategy, start, end):
    for seed in (0, 5):
        for b in (0.5, 1.0, math.inf):
            t = bench_arrivals(200, math.inf, b, seed, RampUp(strategy, start, end))
            assert t.tolist() == vllm_loop(200, strategy, start, end, b, seed)


@pytest.mark.parametrize("args,match", [
    (("linear", 0, 5), "start-rps must be"),          # vLLM: rate 0 fails its assert
    (("exponential", 5, 2), "above --ramp-up-end-rps"),
    (("quadratic", 1, 2), "unknown ramp-up strategy"),
    (("linear", None, 5), "needs both"),
    ((None, 1, 5), "need --ramp-up-strategy")])
def test_bad_ramps_are_one_error(args, match):
    with pytest.raises(TraceError, match=match):
        ramp_up(*args)


# -- command line ----------------------------------------------------------------------------
def run(capsys, *args):
    try:
        code = main([*map(str, args)])
    except SystemExit as e:         # argparse's own errors (one line, exit 2)
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_with_a_ramp_up(tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run(capsys, "simulate", "synth:alpaca-vicuna", "-n", 5, "--policy", "fcfs",
                       "--ramp-up-strategy", "linear", "--ramp-up-start-rps", 1,
                       "--ramp-up-end-rps", 5, "--burstiness", "inf", "--out", out,
                       "--no-progress")
    assert code == 0, err
    import pandas as pd
    rec = pd.read_csv(out / "records_fcfs.csv")
    assert np.allclose(np.sort(rec["arrival_s"]), [1, 1.5, 11 / 6, 25 / 12, 137 / 60])


@pytest.mark.parametrize("extra,match", [
    (["--ramp-up-strategy", "linear", "--ramp-up-start-rps", "5", "--ramp-up-end-rps", "2"],
     "above --ramp-up-end-rps"),
    (["--ramp-up-strategy", "linear", "--ramp-up-start-rps", "1", "--ramp-up-end-rps", "2",
      "--request-rate", "4"], "drop --request-rate"),
    (["--ramp-up-start-rps", "1"], "need --ramp-up-strategy"),
    (["--burstiness", "2"], "give --request-rate"),
    (["--request-rate", "4", "--rate", "4"], "give one of the two"),
    (["--request-rate", "0"], "must be > 0"),
    (["--ramp-up-strategy", "cubic"], "invalid choice")])
def test_bad_traffic_flags_are_one_line_exit_2(tmp_path, capsys, extra, match):
    code, out, err = run(capsys, "simulate", "synth:alpaca-vicuna", "-n", 4, "--out",
                         tmp_path / "o", *extra)
    assert code == 2 and match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("seqsched")
    assert not (tmp_path / "o").exists()


def test_sweep_points_carry_the_traffic_only_when_given():
    # a sweep without the flags keeps its trace options, so its point ids, as before
    import argparse
    from seqsched.app.sweep_grid import trace_options_from_args
    from seqsched.app.trace_args import BENCH_ARRIVAL_KEYS, add_trace_arguments
    p = argparse.ArgumentParser()
    add_trace_arguments(p)
    plain = trace_options_from_args(p.parse_args(["synth:alpaca-vicuna"]))
    assert not set(BENCH_ARRIVAL_KEYS) & set(plain)
    ramped = trace_options_from_args(p.parse_args([
        "synth:alpaca-vicuna", "--ramp-up-strategy", "linear", "--ramp-up-start-rps", "1",
        "--ramp-up-end-rps", "5"]))
    assert {k: ramped[k] for k in BENCH_ARRIVAL_KEYS if k in ramped} == {
        "ramp_up_strategy": "linear", "ramp_up_start_rps": 1, "ramp_up_end_rps": 5}


# -- a vLLM bench result that records a ramp-up ----------------------------------------------
def write_result(path, **over):
    """A `vllm bench serve --ramp-up-strategy linear --ramp-up-start-rps 1
    --ramp-up-end-rps 5 --burstiness inf` result of 5 requests, as serve.py writes it."""
    data = {"num_prompts": 5, "request_rate": "inf", "burstiness": float("inf"),
            "max_concurrency": None, "ramp_up_strategy": "linear", "ramp_up_start_rps": 1,
            "ramp_up_end_rps": 5, "input_lens": [30] * 5, "output_lens": [4] * 5,
            "ttfts": [0.1] * 5, "itls": [[0.02] * 3] * 5, "errors": [""] * 5,
            "rps_change_events": [{"rps": r, "timestamp": "t"} for r in range(1, 6)]}
    data.update(over)
    path.write_text(json.dumps({k: v for k, v in data.items() if v is not None}))
    return path


def test_a_result_with_a_ramp_up_is_rebuilt_with_it(tmp_path):
    run_ = read_recorded(write_result(tmp_path / "r.json"))
    assert np.allclose(run_.trace.arrival_s, [1, 1.5, 11 / 6, 25 / 12, 137 / 60])
    assert any("linear ramp-up 1 -> 5 req/s" in n for n in run_.notes)
    # flags override the result's keys: an exponential ramp 1 -> 16
    over = read_recorded(tmp_path / "r.json", traffic={
        "ramp_up_strategy": "exponential", "ramp_up_start_rps": 1, "ramp_up_end_rps": 16})
    assert np.allclose(over.trace.arrival_s, np.cumsum([1, 1 / 2, 1 / 4, 1 / 8, 1 / 16]))


@pytest.mark.parametrize("missing,shown", [
    (("ramp_up_strategy", "ramp_up_start_rps", "ramp_up_end_rps"), "rps_change_events"),
    (("ramp_up_end_rps",), "ramp_up_strategy, ramp_up_start_rps")])
def test_a_ramp_up_the_result_does_not_describe_is_one_note(tmp_path, missing, shown):
    path = write_result(tmp_path / "r.json", **dict.fromkeys(missing))
    run_ = read_recorded(path)
    notes = [n for n in run_.notes if "shows a ramp-up" in n]
    assert len(notes) == 1 and f"({shown})" in notes[0] and "--ramp-up-strategy" in notes[0]
    assert run_.trace.arrival_s.tolist() == [0.0] * 5          # its rate: inf
    # flags that describe it rebuild it (no note)
    over = read_recorded(path, traffic={"ramp_up_strategy": "linear", "ramp_up_start_rps": 1,
                                        "ramp_up_end_rps": 5, "burstiness": math.inf})
    assert not [n for n in over.notes if "shows a ramp-up" in n]
    assert np.allclose(over.trace.arrival_s, [1, 1.5, 11 / 6, 25 / 12, 137 / 60])


def test_bad_ramp_keys_in_a_result_are_one_error(tmp_path):
    with pytest.raises(TraceError, match="above --ramp-up-end-rps"):
        read_recorded(write_result(tmp_path / "r.json", ramp_up_start_rps=9))
    with pytest.raises(TraceError, match="refuses a finite"):
        read_recorded(write_result(tmp_path / "r.json", request_rate=3.0))


def test_validate_measured_replays_the_ramp(tmp_path, capsys):
    out = tmp_path / "v"
    code, _, err = run(capsys, "validate", "--measured", write_result(tmp_path / "r.json"),
                       "--gpu", "A100-80GB", "--model", "llama-3-8b", "--out", out)
    assert code == 0, err
    assert "linear ramp-up 1 -> 5 req/s" in err
    import pandas as pd
    rec = pd.read_csv(out / "records_sim.csv")
    assert np.allclose(np.sort(rec["arrival_s"]), [1, 1.5, 11 / 6, 25 / 12, 137 / 60])
