"""`preemption=swap`: a victim's KV goes to host memory and comes back instead of being
recomputed. Hand-computed with the toy cost model of coretoy.py (a pure-decode iteration of r
rows = 1 + 0.5 r; a prefill adds 0.125 per prompt token) on the `tiny` model, whose KV is
2 layers x 32 dims x 2 (K, V) x 2 bytes = 256 bytes per token."""

from __future__ import annotations

import pytest

from coretoy import FixedPredictor, rec, small_kv_config, toy_executor, trace
from seqsched.app.cli import main
from seqsched.app.run import RunConfig, simulate
from seqsched.backends.links import LINKS, get_link, host_link
from seqsched.common.errors import UserError
from seqsched.sim.swap import GIB, HostSwap, host_swap


def _swap_run(host="2.048e-6", swap_space=4.0, policy="fcfs", predicted=None):
    # KV: 32 tokens in blocks of 4; two requests of 8 + 12 tokens cannot both finish
    cfg = small_kv_config(32, policy=policy, block_size=4, swap_space=swap_space,
                          host_link=host, policy_params={"preemption": "swap"})
    pred = FixedPredictor(predicted) if predicted is not None else None
    t = trace([("r0", 0, 8, 12), ("r1", 0, 8, 12)])
    return simulate(t, cfg, predictor=pred, executor=toy_executor())


def test_swap_round_trip_hand_case():
    # host link 2,048 bytes/s: r1's 16 KV tokens = 4,096 bytes take 2 s each way
    res = _swap_run()
    # e1 (as with recompute): prefill 4.0, 8 iterations -> 18; each row holds 16 tokens
    # e2: r1 swapped out (2 s: 18 -> 20); r0's last 4 tokens 4 * 1.5 -> 26
    # e3: r1 swapped in (2 s: 26 -> 28), then decodes its last 4 tokens, no prefill again:
    #     4 * 1.5 -> 34 (recompute would prefill 16 tokens: 3.5 + 3 * 1.5)
    st = res.steps
    assert list(st["kind"]) == ["generate", "swap", "generate", "swap", "generate"]
    assert list(st["start_s"]) == [0.0, 18.0, 20.0, 26.0, 28.0]
    assert list(st["end_s"]) == [18.0, 20.0, 26.0, 28.0, 34.0]
    assert list(st["prefill_tokens"]) == [16, 0, 0, 0, 0]
    r0, r1 = rec(res, "r0"), rec(res, "r1")
    assert (r0["first_token_s"], r0["finish_s"]) == (4.0, 26.0)
    assert (r1["first_token_s"], r1["finish_s"]) == (4.0, 34.0)
    assert (r1["preemptions"], r1["attempts"], r1["swapped_tokens"]) == (1, 2, 16)
    assert (r1["recomputed_tokens"], r1["wasted_tokens"], r1["generated_tokens"]) == (0, 0, 12)
    assert r0["swapped_tokens"] == 0
    assert res.summary["swapped_tokens"] == 16
    assert res.summary["swap_s"] == 4.0           # the round trip: 2 x 4,096 B / 2,048 B/s
    assert (st["kv_used_tokens"] <= 32).all()


def test_swap_round_trip_over_pcie4():
    res = _swap_run(host=None)                    # A100-80GB: PCIe 4.0 x16
    bw = 16 * 16 * 128 / 130 / 8 * 1e9            # 31.5 GB/s per direction
    assert res.summary["swap_s"] == pytest.approx(2 * 16 * 256 / bw, rel=1e-12)
    assert rec(res, "r1")["finish_s"] == pytest.approx(30.0 + 2 * 16 * 256 / bw, rel=1e-12)


def test_full_swap_space_falls_back_to_recompute():
    # 2e-6 GiB holds 8 tokens: r1's 16 do not fit -> preempted by recompute (the timeline of
    # test_continuous_hand.test_preemption_by_recompute_hand_case)
    res = _swap_run(swap_space=2e-6)
    r1 = rec(res, "r1")
    assert (r1["swapped_tokens"], r1["recomputed_tokens"], r1["finish_s"]) == (0, 16, 32.0)
    assert "swap" not in set(res.steps["kind"])
    assert res.summary["swap_s"] == 0.0


def test_swap_with_sjf_swaps_the_longest_predicted():
    res = _swap_run(policy="sjf", predicted=[20, 5])
    assert rec(res, "r0")["swapped_tokens"] == 16 and rec(res, "r1")["swapped_tokens"] == 0


def test_host_swap_accounting():
    s = host_swap(1.0, 512, 1e9)
    assert s.capacity_tokens == GIB // 512
    assert s.put(1000) == 1000 * 512 / 1e9 and s.used_tokens == 1000
    assert s.take(1000) == 1000 * 512 / 1e9 and s.used_tokens == 0
    small = HostSwap(10, 1, 1.0)
    assert small.fits(10) and not small.fits(11)
    with pytest.raises(RuntimeError):
        small.put(11)


def test_link_figures():
    assert LINKS["pcie4"].gbs == pytest.approx(31.5, abs=0.02)
    assert LINKS["pcie5"].gbs == pytest.approx(63.0, abs=0.02)
    assert host_link("H100-SXM").name == "pcie5" and host_link("A100-80GB").name == "pcie4"
    assert get_link("25").bandwidth == 25e9
    with pytest.raises(UserError, match="unknown link"):
        get_link("usb2")


def test_records_have_no_swap_column_without_swap():
    cfg = small_kv_config(32, policy="fcfs", block_size=4)
    res = simulate(trace([("a", 0, 8, 2)]), cfg, executor=toy_executor())
    assert "swapped_tokens" not in res.records and "swap_s" not in res.summary
    assert RunConfig().features() == ()
    assert RunConfig(policy_params={"preemption": "swap"}).features() == ("swap",)


def test_swap_space_zero_is_one_error_line(capsys):
    code = main(["simulate", "synth:alpaca-vicuna", "-n", "5", "--policy", "fcfs",
                 "--policy-param", "preemption=swap", "--swap-space", "0", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("seqsched: error: preemption=swap needs host swap space")


def test_swap_from_the_cli(capsys, tmp_path):
    out = tmp_path / "run"
    code = main(["compare", "synth:alpaca-vicuna", "-n", "60", "--rate", "1e7",
                 "--policies", "fcfs", "fcfs:preemption=swap", "--model", "tiny",
                 "--kv-blocks", str(small_kv_config(4000).kv_blocks),
                 "--swap-space", "1", "--host-link", "pcie5", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    import pandas as pd
    swap = pd.read_csv(out / "records_fcfs:preemption=swap.csv")
    plain = pd.read_csv(out / "records_fcfs.csv")
    assert "swapped_tokens" in swap and "swapped_tokens" not in plain
    assert swap["preemptions"].sum() > 0 and swap["swapped_tokens"].sum() > 0
    assert swap["recomputed_tokens"].sum() == 0
    assert (swap["generated_tokens"] == plain["generated_tokens"]).all()
