"""Routers (power-of-two, SGLang-style prefix-aware) and prefill/decode disaggregation,
hand-computed with the toy cost model of coretoy.py (a prefill iteration of r rows =
1 + 0.5 r + 0.125 x prompt tokens; a decode iteration of r rows = 1 + 0.5 r) on the `tiny`
model (256 KV bytes per token)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from coretoy import rec, small_kv_config, toy_executor, trace
from seqsched.analysis.slo import parse_slo
from seqsched.app.cli import main
from seqsched.app.run import RunConfig, simulate
from seqsched.common.errors import UserError
from seqsched.traces.synthetic import generate
from test_conservation import check_conservation


def _disagg(rows, **kw):
    cfg = small_kv_config(256, policy="fcfs", block_size=4, prefill_replicas=1,
                          decode_replicas=1, kv_link="2.048e-6", **kw)   # 2,048 bytes/s
    return simulate(trace(rows), cfg, executor=toy_executor())


def test_disaggregated_ttft_is_prefill_plus_transfer():
    res = _disagg([("a", 0, 8, 3)])
    a = rec(res, "a")
    # prefill replica: 1 + 0.5 + 0.125*8 = 2.5 (prefill + first token)
    # KV of the 8 prompt tokens: 8 * 256 B / 2,048 B/s = 1.0 s -> the token reaches the user
    assert a["prefill_end_s"] == 2.5 and a["kv_transfer_s"] == 1.0
    assert a["first_token_s"] == 2.5 + 1.0
    # decode replica: 2 more tokens, 1.5 each -> 6.5; TPOT 1.5
    assert a["finish_s"] == 6.5
    assert (a["prefill_replica"], a["replica"]) == (0, 1)
    assert res.summary["ttft_s_mean"] == 3.5 and res.summary["tpot_s_mean"] == 1.5
    st = res.steps
    assert list(st["replica"]) == [0, 1] and list(st["prefill_tokens"]) == [8, 0]


def test_one_token_request_finishes_on_the_prefill_side():
    res = _disagg([("a", 0, 8, 1), ("b", 0, 8, 2)])
    a, b = rec(res, "a"), rec(res, "b")
    # both prefill together: 1 + 1 + 0.125*16 = 4.0; a is done there
    assert (a["finish_s"], a["replica"], a["prefill_replica"]) == (4.0, 0, -1)
    assert math.isnan(a["kv_transfer_s"])
    # b's 8 tokens: 1 s; then one decode 1.5 -> 6.5
    assert (b["first_token_s"], b["finish_s"], b["replica"]) == (5.0, 6.5, 1)


def test_disaggregated_runs_conserve_work():
    rows = [(f"r{i}", i * 0.5, 4 + 3 * i, 1 + (7 * i) % 13) for i in range(12)]
    t = trace(rows)
    cfg = small_kv_config(96, policy="sjf", block_size=4, prefill_replicas=2,
                          decode_replicas=2, router="least-loaded")
    res = simulate(t, cfg, executor=toy_executor())
    check_conservation(t, cfg, res)
    handed = res.records["prefill_replica"] >= 0
    assert (res.records.loc[handed, "replica"] >= 2).all()
    assert (res.records.loc[handed, "prefill_replica"] <= 1).all()
    assert (res.records["first_token_s"] >= res.records["prefill_end_s"].fillna(0)).all()


def test_decode_side_that_cannot_hold_a_request_is_one_error(capsys):
    t = trace([("big", 0, 17000, 200)])
    cfg = RunConfig(policy="fcfs", model="llama-7b", gpu="A100-80GB", decode_gpu="L4",
                    prefill_replicas=1, decode_replicas=1)
    with pytest.raises(UserError, match="the decode side .* on L4.*request big needs 17200"):
        simulate(t, cfg)
    code = main(["simulate", "synth:alpaca-vicuna", "-n", "4", "--prefill-replicas", "1",
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--decode-replicas" in err[0]


def test_disaggregated_goodput_counts_the_transfer_in_ttft():
    t = trace([("a", 0, 8, 3)])
    cfg = small_kv_config(256, policy="fcfs", block_size=4, prefill_replicas=1,
                          decode_replicas=1, kv_link="2.048e-6")
    # TTFT 3.5 (prefill 2.5 + transfer 1.0): a 3 s objective fails, a 4 s one holds
    for bound, met in (("3s", 0.0), ("4s", 1.0)):
        res = simulate(t, cfg, executor=toy_executor(), slos=(parse_slo(f"ttft_p99={bound}"),))
        assert res.summary["goodput_rps"] == met / 6.5


def test_power_of_two_with_two_replicas_is_least_loaded():
    t = generate("uniform", 60, seed=3, rate=40.0)
    runs = {r: simulate(t, RunConfig(policy="fcfs", model="tiny", replicas=2, router=r))
            for r in ("power-of-two", "least-loaded")}
    np.testing.assert_array_equal(runs["power-of-two"].records["replica"],
                                  runs["least-loaded"].records["replica"])


def test_power_of_two_spreads_over_four_replicas():
    t = generate("uniform", 200, seed=3, rate=400.0)
    res = simulate(t, RunConfig(policy="fcfs", model="tiny", replicas=4, router="power-of-two"))
    counts = np.bincount(res.records["replica"], minlength=4)
    assert counts.min() > 0 and counts.max() < 100


def test_prefix_aware_router_keeps_a_group_on_one_replica():
    t = generate("shared-prefix", 18, seed=0, groups=3, users=6, questions=1)
    cfgs = {r: RunConfig(policy="fcfs", model="llama-3-8b", gpu="H100-SXM", replicas=2,
                         router=r, prefix_caching=True)
            for r in ("prefix-aware", "round-robin")}
    res = {r: simulate(t, c) for r, c in cfgs.items()}
    aware = res["prefix-aware"].records.merge(t.df[["id", "prefix_group"]], on="id")
    # one system prompt per replica: the first of each group picks the emptier tree, the
    # rest follow their group's match (> 50% of the prompt)
    assert (aware.groupby("prefix_group")["replica"].nunique() == 1).all()
    assert aware["replica"].nunique() == 2
    assert (res["prefix-aware"].summary["prefix_cached_tokens"]
            > res["round-robin"].summary["prefix_cached_tokens"])


def test_per_replica_table_in_the_report(tmp_path, capsys):
    out = tmp_path / "r"
    code = main(["compare", "synth:shared-prefix", "-n", "24", "--model", "llama-3-8b",
                 "--gpu", "H100-SXM", "--replicas", "2", "--router", "prefix-aware",
                 "--enable-prefix-caching", "--policies", "fcfs", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    table = pd.read_csv(out / "replicas_fcfs.csv")
    assert list(table["replica"]) == [0, 1] and table["requests"].sum() == 24
    assert "hit_rate_tokens" in table
    assert "## Replicas" in (out / "report.md").read_text()


def test_decode_side_has_its_own_tp_and_profile():
    from seqsched.app.run import describe_backend
    from seqsched.app.serving_setup import decode_config
    base = dict(policy="fcfs", model="llama-7b", gpu="A100-80GB", prefill_replicas=1,
                decode_replicas=1)
    # a request the L4's KV cache cannot hold at TP1 fits the four L4s of a TP4 decode replica
    t = trace([("big", 0, 17000, 200)])
    res = simulate(t, RunConfig(**base, decode_gpu="L4", decode_tp=4))
    assert res.records["generated_tokens"].tolist() == [200]
    # a --profile measured for the prefill GPU is not carried to another GPU or TP ...
    side = decode_config(RunConfig(**base, profile="a100-llama-2-7b-tp1", decode_tp=2))
    assert (side.gpu, side.tp, side.profile) == ("A100-80GB", 2, None)
    side = decode_config(RunConfig(**base, profile="a100-llama-2-7b-tp1", decode_gpu="L4"))
    assert (side.gpu, side.tp, side.profile) == ("L4", 1, None)
    # ... but is on the same GPU and TP, and "roofline" always is; --decode-profile wins
    assert decode_config(RunConfig(**base, profile="a100-llama-2-7b-tp1")).profile \
        == "a100-llama-2-7b-tp1"
    assert decode_config(RunConfig(**base, profile="roofline", decode_gpu="L4")).profile \
        == "roofline"
    assert decode_config(RunConfig(**base, decode_gpu="L4", decode_profile="roofline")).profile \
        == "roofline"
    text = describe_backend(RunConfig(**base, decode_gpu="L4", decode_tp=4))
    assert text == "prefill: A100-80GB / llama-7b, roofline; decode: L4 / llama-7b / TP4, roofline"
    assert describe_backend(RunConfig(**base)) == "A100-80GB / llama-7b, roofline"


def test_decode_side_options_need_disaggregation():
    with pytest.raises(UserError, match="--prefill-replicas P --decode-replicas D"):
        simulate(trace([("a", 0, 8, 3)]), RunConfig(policy="fcfs", model="tiny", decode_tp=2))
