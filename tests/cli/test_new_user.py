"""What a new user pastes and mistypes: a whole `vllm serve` command, a Hugging Face model id,
a percentage for a share, an unknown option, `--version`, Ctrl-C in a sweep, a plan whose
stderr is a log file. Each either works or ends in one error line that says the fix."""

from __future__ import annotations

import argparse

import pytest

from seqsched.app import vllm_args
from seqsched.app.cli import main
from seqsched.app.guard import run_command

SYNTH = ["synth:azure-conv", "-n", "40", "--rate", "5", "--no-progress"]
VLLM_SERVE = ["--max-num-seqs", "256", "--max-num-batched-tokens", "8192",
              "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.9",
              "--enable-chunked-prefill", "--block-size", "16"]
PLUMBING = ["--host", "0.0.0.0", "--port", "8000", "--dtype", "bfloat16",
            "--disable-log-requests", "--trust-remote-code", "--served-model-name", "chat",
            "--kv-cache-dtype", "auto"]


def run(*args) -> int:
    return main([str(a) for a in args])


def test_a_pasted_vllm_serve_command_runs_as_without_its_server_flags(capsys, monkeypatch):
    monkeypatch.setattr(vllm_args, "_NOTED", set())
    model = ["--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "H100-SXM"]
    assert run("simulate", *SYNTH, *model, *VLLM_SERVE) == 0
    plain = capsys.readouterr().out
    assert run("simulate", *SYNTH, *model, *VLLM_SERVE, *PLUMBING) == 0
    out, err = capsys.readouterr()
    assert out == plain
    # --host is vLLM's, not an abbreviation of --host-link
    assert err.strip() == ("seqsched: note: ignored --host, --port, --served-model-name, "
                           "--disable-log-requests, --trust-remote-code, --dtype, "
                           "--kv-cache-dtype: vllm serve options that change nothing simulated")


@pytest.mark.parametrize("flags, words", [
    (["--kv-cache-dtype", "fp8"], "--kv-blocks N"),
    (["--data-parallel-size", "2", "--replicas", "3"], "give one of them"),
    (["--quantization", "awq"], "config.json"),
    (["--dtype", "float32"], "torch_dtype"),
    (["--gpu-memory-utilization", "90"], "e.g. 0.9 for 90%"),
    (["--policy", "sfj"], "did you mean sjf?"),
    (["--model", "Qwen/Qwen2.5-14B-Instruct"], "huggingface.co/Qwen/Qwen2.5-14B-Instruct"),
    (["--gpu", "H10-SXM"], "did you mean H100-SXM?"),
    (["--predictor", "from-file"], "--predictor-param path=PREDICTIONS.csv"),
])
def test_what_is_not_modelled_or_mistyped_is_one_line_with_the_fix(flags, words,
                                                                    one_error_line):
    assert run("simulate", *SYNTH, *flags) == 2
    assert words in one_error_line()


def test_an_unknown_option_points_at_its_command_help(capsys):
    with pytest.raises(SystemExit) as e:
        run("trace", "inspect", "synth:uniform", "--bogus")
    assert e.value.code == 2
    assert capsys.readouterr().err.strip() == ("seqsched trace inspect: error: unrecognized "
                                               "arguments: --bogus (see seqsched trace inspect "
                                               "--help)")


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        run("--version")
    assert e.value.code == 0
    assert capsys.readouterr().out.startswith("seqsched 0.")


def interrupted(tmp_path, capsys, **extra) -> tuple[int, str]:
    out = tmp_path / "runs" / "rates"

    def work(args):
        (tmp_path / "runs" / "rates.partial").mkdir(parents=True)
        raise KeyboardInterrupt
    code = run_command(argparse.Namespace(func=work, out=f"{out}/", **extra))
    return code, capsys.readouterr().err.strip()


def test_ctrl_c_names_the_folder_kept_and_how_to_finish(tmp_path, capsys):
    code, err = interrupted(tmp_path, capsys, resume=False)
    assert code == 130
    assert err == (f"seqsched: interrupted; finished work is kept in {tmp_path}/runs/"
                   "rates.partial/ (run the same command with --resume to finish it)")
    code, err = interrupted(tmp_path / "b", capsys)      # compare: no --resume
    assert err.endswith("rates.partial/")
    code = run_command(argparse.Namespace(func=lambda a: (_ for _ in ()).throw(
        KeyboardInterrupt), out=None))
    assert capsys.readouterr().err.strip() == ("seqsched: interrupted; no output folder was "
                                               "completed")


def test_plan_draws_no_progress_bar_into_a_log(tmp_path, capsys):
    assert run("plan", "synth:alpaca-vicuna", "-n", "40", "--rate", "2", "--slo",
               "ttft_p99=5s", "--grid", "gpu=L4,A100-80GB", "--workers", "1",
               "--out", tmp_path / "plan") == 0
    err = capsys.readouterr().err
    assert "point/s" not in err and "%|" not in err, err


def test_slos_given_are_judged_in_the_table(capsys):
    """`--slo` used to reach summary.csv only: the table a user reads did not show it."""
    assert run("simulate", *SYNTH, "--model", "tiny", "--gpu", "L4") == 0
    assert "SLO" not in capsys.readouterr().out
    assert run("simulate", *SYNTH, "--model", "tiny", "--gpu", "L4", "--slo",
               "ttft_p99=100s") == 0
    header, _, row = capsys.readouterr().out.splitlines()[2:5]
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")],
                     [c.strip() for c in row.strip("|").split("|")]))
    # a tiny model answers 40 requests within 100 s: every request counts as goodput
    assert cells["SLO attain."] == "1" and cells["goodput req/s"] == cells["req/s"]


def test_the_terminal_says_what_ran_on_what(capsys):
    """A run without --out said nothing of the GPU, model or cost model: a bench result ran
    as the default llama-7b unseen."""
    assert run("simulate", *SYNTH, "--gpu", "rtx pro 6000",
               "--model", "meta-llama/Llama-3.1-8B-Instruct") == 0
    assert capsys.readouterr().out.splitlines()[0] == (
        "azure-conv-40-s0 (40 requests) on RTX-PRO-6000 / llama-3.1-8b, built-in kernel "
        "profile rtxpro6000-llama-3.1-8b-tp1")
    assert run("simulate", *SYNTH) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("on A100-80GB / llama-7b, roofline")


def test_a_warning_is_said_once_per_command_not_once_per_policy(tmp_path):
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-m", "seqsched.app.cli", "compare",
                        "synth:uniform", "-n", "20", "--trace-option", "prompt_min=3000",
                        "--trace-option", "prompt_max=3000", "--policies", "fcfs", "sjf",
                        "srpt", "--gpu", "RTX-PRO-6000", "--model", "llama-3.1-8b",
                        "--max-num-batched-tokens", "4096"],
                       capture_output=True, text=True, timeout=300,
                       env={"MPLBACKEND": "Agg", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines and all("beyond the profiled grid" in line for line in lines), lines
    assert len(lines) == len(set(lines)), lines


def test_trace_convert_takes_dash_o_as_synth_and_concat_do(tmp_path, capsys, one_error_line):
    """`trace synth ... -o t.jsonl` then `trace convert t.jsonl -o t.csv` was an error."""
    src = tmp_path / "t.jsonl"
    assert run("trace", "synth", "uniform", "-n", "12", "-o", src) == 0
    for argv, out in ((["convert", src, "-o"], "a.csv"), (["convert", src], "b.csv"),
                      (["convert", "--trace", src], "c.csv")):
        assert run("trace", *argv, tmp_path / out) == 0
        assert (tmp_path / out).read_text().count("\n") == 13       # header + 12 requests
    capsys.readouterr()
    assert run("trace", "convert", src) == 2
    assert "-o OUT" in one_error_line()
    assert run("trace", "convert", src, tmp_path / "d.csv", "-o", tmp_path / "e.csv") == 2
    assert "two output files" in one_error_line()


def test_a_sweep_rerun_without_resume_says_it_starts_over(tmp_path, capsys):
    partial = tmp_path / "sw.partial"
    partial.mkdir()
    (partial / "sweep.csv").write_text("label,point_id\nfcfs rate=2.0,abc\nfcfs rate=4.0,def\n")
    assert run("sweep", "synth:uniform", "-n", "10", "--grid", "rate=2", "--workers", "1",
               "--no-progress", "--out", tmp_path / "sw") == 0
    assert capsys.readouterr().err.strip() == (
        f"seqsched: note: starting over: the 2 finished point(s) in {partial}/ are discarded "
        "(--resume keeps them)")


def test_validate_without_a_profile_names_the_shipped_one(one_error_line):
    assert run("validate", "--trace", "synth:alpaca-vicuna", "--requests", "4") == 2
    assert "--profile tiny-cpu-float32" in one_error_line()


def test_a_lengths_only_csv_is_told_to_add_arrival_times(tmp_path, one_error_line):
    """The fix was 'rename the column(s)', with nothing to rename."""
    lengths = tmp_path / "lengths.csv"
    lengths.write_text("prompt_tokens,output_tokens\n100,50\n200,30\n")
    assert run("simulate", lengths) == 2
    line = one_error_line()
    assert "missing arrival_s; add the column(s) (arrival_s = 0 on every row" in line
    lengths.write_text("arrival_s,input_len,output_len\n0,100,50\n")
    assert run("simulate", lengths) == 2
    assert "rename the column(s)" in one_error_line()


def test_replay_notes_carry_the_seqsched_prefix(tmp_path, capsys):
    """Every other line on stderr starts `seqsched: `; the replay's notes did not."""
    import json
    n = 6
    result = {"model_id": "meta-llama/Llama-3.1-8B-Instruct", "num_prompts": n,
              "request_rate": 4.0, "burstiness": 1.0, "max_concurrency": None,
              "input_lens": [100 + 10 * i for i in range(n)], "output_lens": [5] * n,
              "ttfts": [0.05] * n, "itls": [[0.01] * 4 for _ in range(n)],
              "duration": 2.0, "completed": n}
    (tmp_path / "bench.json").write_text(json.dumps(result))
    assert run("validate", "--measured", tmp_path / "bench.json", "--gpu", "H100-SXM",
               "--out", tmp_path / "val") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all(line.startswith("seqsched: ") for line in err), err
    assert any(line.startswith("seqsched: note: arrivals rebuilt") for line in err), err


def test_predict_takes_the_predictor_param_flag_its_errors_name(tmp_path, capsys):
    """Predictor errors said `--param`, which simulate does not take (and which is validate's
    policy parameter); predict eval/annotate now take --predictor-param too."""
    data = tmp_path / "d.jsonl"
    assert run("trace", "synth", "alpaca-vicuna", "-n", "30", "-o", data) == 0
    capsys.readouterr()
    assert run("predict", "eval", "--predictor", "noisy", "--predictor-param", "scale=0",
               "--data", data) == 0
    # noise of scale 0 around the true (greedy) length: no error against it
    greedy = next(line for line in capsys.readouterr().out.splitlines()
                  if line.startswith("greedy"))
    assert greedy.split()[1:4] == ["30", "0.000", "1.000"]


def test_several_policies_given_to_simulate_point_at_compare(capsys):
    with pytest.raises(SystemExit):
        run("simulate", *SYNTH, "--policies", "fcfs", "sjf")
    assert capsys.readouterr().err.strip().endswith(
        "simulate runs one --policy: compare and sweep take --policies (see seqsched simulate "
        "--help)")
