"""Every option x (wrong type, out of range, conflicting), on the command line, in a sweep grid
and in an experiment TOML: exit 2 and one line naming the option and what it must be."""

from __future__ import annotations

import pytest

from faultkit import assert_user_error, run

SIM = ["simulate", "synth:uniform", "-n", "8"]

CLI_CASES = {
    "seed-negative": (["--seed", "-1"], "--seed must be >= 0, got -1"),
    "seed-text": (["--seed", "abc"], "invalid int value: 'abc'"),
    "seed-fraction": (["--seed", "1.5"], "invalid int value: '1.5'"),
    "n-zero": (["-n", "0"], "(-n) must be >= 1, got 0"),
    "n-negative": (["-n", "-5"], "(-n) must be >= 1, got -5"),
    "n-huge": (["-n", "99999999999"], "(-n) must be <= 10,000,000"),
    "rate-zero": (["--rate", "0"], "--rate must be > 0"),
    "rate-negative": (["--rate", "-2"], "--rate must be > 0"),
    "rate-nan": (["--rate", "nan"], "--rate must be a finite number"),
    "rate-inf": (["--rate", "inf"], "--rate must be a finite number"),
    "rate-text": (["--rate", "fast"], "invalid float value: 'fast'"),
    "cv-zero": (["--arrival", "gamma", "--rate", "2", "--cv", "0"], "--cv must be in [0.001"),
    "cv-underflow": (["--arrival", "gamma", "--rate", "2", "--cv", "1e-200"],
                     "--cv must be in [0.001, 100]"),
    "speedup-zero": (["--speedup", "0"], "--speedup must be > 0"),
    "speedup-tiny": (["--rate", "1", "--arrival", "replay", "--speedup", "1e-300"],
                     "arrival"),
    "sample-zero": (["--sample", "0"], "--sample must be >= 1"),
    "max-output-zero": (["--max-output-tokens", "0"], "--max-output-tokens must be >= 1"),
    "max-new-zero": (["--max-new-tokens", "0"], "--max-new-tokens must be >= 1"),
    "replicas-zero": (["--replicas", "0"], "--replicas must be >= 1"),
    "replicas-huge": (["--replicas", "1000000"], "--replicas must be <= 4,096"),
    "memory-zero": (["--memory-fraction", "0"], "--memory-fraction must be in (0, 1]"),
    "memory-big": (["--memory-fraction", "1.5"], "--memory-fraction must be in (0, 1]"),
    "memory-nan": (["--memory-fraction", "nan"], "--memory-fraction must be a finite"),
    "batch-zero": (["--policy", "vanilla", "--batch-size", "0"], "--batch-size must be > 0"),
    "batch-bool-param": (["--policy", "vanilla", "--policy-param", "batch_size=true"],
                         "batch-size must be a whole number"),
    "policy-param-not-kv": (["--policy-param", "batch_size"], "is not KEY=VALUE"),
    "predictor-bool-param": (["--predictor", "noisy", "--predictor-param", "scale=true"],
                             "scale"),
    "predictor-seed-negative": (["--predictor", "noisy", "--predictor-param", "seed=-3"],
                                "seed"),
    "window-backwards": (["--window", "5:2"], "END must be greater than START"),
    "window-text": (["--window", "a:b"], "is not a time"),
    "rows-negative": (["--rows=-3:5"], "row numbers start at 0"),
    "gpu-unknown": (["--gpu", "V100"], "unknown GPU 'V100'"),
    "model-unknown": (["--model", "gpt-9"], "unknown model 'gpt-9'"),
    "router-unknown": (["--router", "psychic"], "unknown router 'psychic'"),
    "policy-unknown": (["--policy", "bogus"], "unknown policy 'bogus'"),
    "backend-unknown": (["--backend", "tpu"], "unknown backend preset 'tpu'"),
    "predictor-unknown": (["--predictor", "psychic"], "unknown predictor 'psychic'"),
    "synth-param-bool": (["--trace-option", "prompt_median=true"], "prompt_median"),
    "profile-missing": (["--profile", "nope.json"], "nope.json"),
    "two-traces": (["--trace", "synth:lognormal"], "two traces given"),
    "tp-zero": (["--tp", "0"], "--tp must be >= 1"),
    "tp-huge": (["--tp", "99999999999999999999"], "fits 64 bits"),
    "tensor-parallel-zero": (["--tensor-parallel-size", "0"], "must be >= 1"),
    "max-num-seqs-zero": (["--max-num-seqs", "0"], "--max-num-seqs must be >= 1"),
    "kv-blocks-zero": (["--kv-blocks", "0"], "--kv-blocks must be >= 1"),
    "swap-space-negative": (["--swap-space", "-1"], "--swap-space must be >= 0"),
    "prefill-replicas-huge": (["--prefill-replicas", "99999999999999999999",
                               "--decode-replicas", "1"], "fits 64 bits"),
    "decode-replicas-negative": (["--prefill-replicas", "1", "--decode-replicas", "-1"],
                                 "--decode-replicas must be >= 0"),
    "max-model-len-huge": (["--max-model-len", "99999999999999999999"], "fits 64 bits"),
    "max-new-huge": (["--max-new-tokens", "99999999999999999999"], "fits 64 bits"),
    "policy-param-huge": (["--policy", "vanilla", "--policy-param",
                           "batch_size=99999999999999999999"], "does not fit 64 bits"),
    "predictor-param-inf": (["--predictor", "noisy", "--predictor-param", "scale=inf"],
                            "not a finite number"),
    "param-empty-key": (["--policy-param", "=3"], "empty KEY"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_simulate_option(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    extra, needle = CLI_CASES[case]
    code, _, err = run(capsys, *SIM, *extra, "--out", "res")
    assert_user_error(code, err, needle)
    assert not (tmp_path / "res").exists() and not (tmp_path / "res.partial").exists()


GRID_CASES = {
    "seed-negative": (["--grid", "seed=1,-1"], "--grid seed must be >= 0, got -1"),
    "rate-zero": (["--grid", "rate=0,2"], "--grid rate must be > 0"),
    "rate-text": (["--grid", "rate=fast"], "'fast' is not a number"),
    "replicas-zero": (["--grid", "replicas=0"], "--grid replicas must be >= 1"),
    "memory-big": (["--grid", "memory_fraction=2"], "memory_fraction must be in (0, 1]"),
    "n-zero": (["--grid", "n=0,4"], "--grid num_requests must be >= 1"),
    "batch-bool": (["--policies", "vanilla", "--grid", "batch_size=true"], "batch-size"),
    "seed-bool": (["--grid", "seed=true"], "is not a whole number"),
    "unknown-key": (["--grid", "warp=1"], "unknown grid key 'warp'"),
    "twice": (["--grid", "rate=1", "--grid", "rate=2"], "given twice"),
    "dup-value": (["--grid", "rate=1,1"], "listed twice"),
    "no-value": (["--grid", "rate="], "empty key or value"),
    "policy-twice": (["--policy", "fcfs", "--policies", "fcfs", "--grid", "rate=1"],
                     "listed twice"),
    "workers-zero": (["--grid", "rate=1", "--workers", "0"], "--workers must be >= 1"),
    "workers-huge": (["--grid", "rate=1", "--workers", "100000"], "--workers must be <="),
    "predictor-key": (["--grid", "predictor.bogus=1,2", "--predictor", "noisy"], "bogus"),
}


@pytest.mark.parametrize("case", list(GRID_CASES))
def test_sweep_option(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    extra, needle = GRID_CASES[case]
    code, _, err = run(capsys, "sweep", "synth:uniform", "-n", "8", *extra, "--out", "sw")
    assert_user_error(code, err, needle)
    assert not (tmp_path / "sw").exists() and not (tmp_path / "sw.partial").exists()


TOML_CASES = {
    "seed-text": ('seed = "x"', "seed must be a whole number, not a string 'x'"),
    "seed-bool": ("seed = true", "seed must be a whole number"),
    "seed-negative": ("seed = -4", "seed must be >= 0, got -4"),
    "rate-negative": ("rate = -1.0", "rate must be > 0"),
    "rate-text": ('rate = "fast"', "rate must be a number"),
    "policies-string": ('policies = "fcfs"', 'policies must be a list, e.g. ["fcfs"]'),
    "policies-empty": ("policies = []", "empty list"),
    "policies-ints": ("policies = [1, 2]", "policies[0] must be a word"),
    "overwrite-text": ('overwrite = "yes"', "overwrite must be true or false"),
    "title-number": ("title = 5", "title must be a string"),
    "table": ("[predictor]\nscale = 2", "predictor must be a word, not a table"),
    "unknown": ("colour = 1", "unknown key 'colour'"),
    "func": ('func = "x"', "unknown key 'func'"),
    "help": ("help = true", "unknown key 'help'"),
    "arrival-choice": ('arrival = "burst"', "choose one of"),
    "n-float": ("num-requests = 2.5", "must be a whole number"),
    "invalid-toml": ("policies = [", "not valid TOML"),
    "vllm-int-float": ("max-num-batched-tokens = 2.5", 'whole number or a string such as "32k"'),
    "vllm-int-word": ('max-num-batched-tokens = "lots"', "'lots' is not a whole number"),
    "vllm-int-bool": ("max-num-seqs = true", "must be a whole number or a string"),
    "vllm-switch-text": ('enable-chunked-prefill = "yes"', "must be true or false"),
}


@pytest.mark.parametrize("command", ["compare", "sweep"])
@pytest.mark.parametrize("case", list(TOML_CASES))
def test_experiment_value(tmp_path, capsys, monkeypatch, command, case):
    monkeypatch.chdir(tmp_path)
    body, needle = TOML_CASES[case]
    toml = tmp_path / "exp.toml"
    toml.write_text(f'{body}\n' if body.startswith("title") else
                    f'{body}\n' if "policies" in body else
                    f'{body}\n', encoding="utf-8")
    extra = ["--grid", "rate=1"] if command == "sweep" else ["--policies", "fcfs"]
    if "policies" in body or case == "invalid-toml":
        extra = ["--grid", "rate=1"] if command == "sweep" else []
    code, _, err = run(capsys, command, "synth:uniform", "-n", "8", "--experiment", toml,
                       *extra, "--out", "res")
    line = assert_user_error(code, err, needle)
    assert "exp.toml" in line
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("case", ["latin1", "utf16", "directory", "missing", "binary"])
def test_experiment_file_itself(tmp_path, capsys, case):
    path = tmp_path / "exp.toml"
    if case == "latin1":
        path.write_bytes('title = "caf\xe9"\n'.encode("latin-1"))
        needle = "not UTF-8"
    elif case == "utf16":
        path.write_bytes('title = "x"\n'.encode("utf-16"))
        needle = "not UTF-8"
    elif case == "directory":
        path.mkdir()
        needle = "is a directory"
    elif case == "binary":
        path.write_bytes(bytes(range(256)))
        needle = "not UTF-8"
    else:
        needle = "no such file"
    code, _, err = run(capsys, "compare", "synth:uniform", "--experiment", path,
                       "--policies", "fcfs")
    assert_user_error(code, err, needle, "exp.toml")


def test_experiment_values_reach_the_run(tmp_path, capsys, monkeypatch):
    """The typed path still works: a valid experiment runs and the flag wins over it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.toml").write_text('title = "t"\npolicies = ["fcfs", "sjf"]\n'
                                       'num-requests = 8\nrate = 4.0\nseed = 2\n'
                                       'overwrite = true\n')
    code, out, err = run(capsys, "compare", "synth:uniform", "--experiment", "exp.toml",
                         "--seed", "3", "--out", "res")
    assert code == 0, err
    assert (tmp_path / "res" / "report.md").read_text().startswith("# t\n")
    import pandas as pd
    summary = pd.read_csv(tmp_path / "res" / "summary.csv")
    assert list(summary["label"]) == ["fcfs", "sjf"]


def test_vllm_options_in_an_experiment_reach_the_run(tmp_path, capsys, monkeypatch):
    """vLLM's option names as `vllm serve` takes them: whole numbers, "2k" and switches, as
    the command line gives them (a file value that the typed path rejected before)."""
    monkeypatch.chdir(tmp_path)
    import pandas as pd
    means = {}
    for seqs in (1, "2k"):
        body = (f'policies = ["fcfs"]\nnum-requests = 12\nrate = 50.0\nmax-num-seqs = '
                f'{seqs if isinstance(seqs, int) else repr(seqs)}\n'
                'max-num-batched-tokens = "2k"\nenable-chunked-prefill = false\n')
        (tmp_path / "exp.toml").write_text(body.replace("'", '"'))
        code, _, err = run(capsys, "compare", "synth:uniform", "--experiment", "exp.toml",
                           "--out", f"res{seqs}")
        assert code == 0, err
        means[seqs] = pd.read_csv(tmp_path / f"res{seqs}" / "summary.csv")["ttft_s_mean"][0]
    assert means[1] > 2 * means["2k"]      # one running request at a time queues the rest


OTHER_CASES = {
    "concat-gap": (["trace", "concat", "a", "b", "-o", "x.jsonl", "--gap", "-1"], "--gap"),
    "concat-gap-nan": (["trace", "concat", "a", "b", "-o", "x.jsonl", "--gap", "nan"],
                       "--gap"),
    "synth-n-zero": (["trace", "synth", "uniform", "-n", "0", "-o", "x.jsonl"], "(-n)"),
    "synth-seed": (["trace", "synth", "uniform", "--seed", "-2", "-o", "x.jsonl"],
                   "--seed must be >= 0"),
    "synth-rate": (["trace", "synth", "uniform", "--rate", "-1", "-o", "x.jsonl"],
                   "--rate must be > 0"),
    "demo-n": (["demo", "-n", "0"], "must be >= 1"),
    "demo-seed": (["demo", "--seed", "-1"], "--seed must be >= 0"),
    "holdout": (["predict", "train", "--data", "x", "--out", "m", "--holdout", "1.5"],
                "holdout"),
    "validate-requests": (["validate", "--trace", "synth:uniform", "--profile", "tiny-cpu",
                           "--requests", "0"], "--requests must be >= 1"),
    "calibrate-threads": (["calibrate", "--threads", "0", "--out", "p.json"],
                          "--threads must be >= 1"),
    "calibrate-seed": (["calibrate", "--seed", "-1", "--out", "p.json"], "--seed must be"),
}


@pytest.mark.parametrize("case", list(OTHER_CASES))
def test_other_command_option(tmp_path, capsys, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    argv, needle = OTHER_CASES[case]
    code, _, err = run(capsys, *argv)
    assert_user_error(code, err, needle)
    assert not (tmp_path / "x.jsonl").exists()


def test_a_typed_flag_wins_even_with_its_default_value(tmp_path, capsys, monkeypatch):
    """`--seed 0` on the command line beats `seed = 5` in the file, although 0 is the
    default (before, the file silently won)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exp.toml").write_text('policies = ["fcfs"]\nseed = 5\nnum-requests = 6\n')
    outs = {}
    for name, extra in (("flag0", ["--seed", "0"]), ("plain0", []), ("file5", None)):
        argv = ["compare", "synth:uniform", "--out", name]
        argv += ["--experiment", "exp.toml", *extra] if extra is not None else [
            "--policies", "fcfs", "--seed", "5", "-n", "6"]
        if name == "plain0":
            argv = ["compare", "synth:uniform", "--policies", "fcfs", "-n", "6", "--out", name]
        code, _, err = run(capsys, *argv)
        assert code == 0, err
        outs[name] = (tmp_path / name / "records_fcfs.csv").read_bytes()
    assert outs["flag0"] == outs["plain0"] != outs["file5"]


@pytest.mark.parametrize("flags, needles", [
    (["--gpu", "H100-SXM"], ["H100-SXM / vicuna-7b", "overriding its A100-80GB / vicuna-7b"]),
    (["--model", "llama-13b"], ["A100-80GB / llama-13b", "overriding"]),
    ([], ["**backend**: paper-a100\n"]),
], ids=["gpu", "model", "none"])
def test_report_header_names_what_ran(tmp_path, capsys, monkeypatch, flags, needles):
    """A preset is named as the backend only when its GPU and model are what ran."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "compare", "synth:uniform", "-n", "6", "--policies", "vanilla",
                       "--backend", "paper-a100", *flags, "--out", "res")
    assert code == 0, err
    report = (tmp_path / "res" / "report.md").read_text()
    for needle in needles:
        assert needle in report, report[:400]


@pytest.mark.parametrize("args, needles", [
    (["--profile", "h100-llama-3.1-8b-tp1-aik"], ["did you mean h100-llama-3.1-8b-tp1-aic",
                                                  "seqsched profile list"]),
    (["--profile", "nothing-like-it"], ["no such file or built-in profile",
                                         "seqsched profile list"]),
    (["--gpu", "H100-SXM", "--model", "llama-3.1-70b", "--tp", "3"],
     ["64 attention heads", "tensor parallel size 3"]),
])
def test_profile_name_typo_and_unsplittable_tp(capsys, args, needles):
    """A typo in a built-in profile's name gets the nearest names, not a list of fifty; a TP
    size vLLM cannot split the heads over is refused as vLLM refuses it."""
    code, _, err = run(capsys, "simulate", "synth:uniform", "-n", "4", *args)
    line = assert_user_error(code, err, needles[0])
    assert all(n in line for n in needles)
