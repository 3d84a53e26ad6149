"""The profile cost model (no torch): fitting, loading, malformed input, and that the
simulation path never imports torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from seqsched.backends.profile import (DECODE_FEATURES, PREFILL_FEATURES, build_profile,
                              builtin_profiles, decode_features, load_profile,
                              prefill_features, profile_from_dict, save_profile,
                              step_features)
from seqsched.common.errors import UserError


def _synthetic_points(rng):
    true_p = np.array([2e-3, 1e-4, 5e-6, 1e-8, 2e-5, 3e-8])     # attention ridge at 65,536
    true_d = np.array([1.5e-3, 2e-5, 3e-7, 4e-5])
    pre, dec = [], []
    for b in (1, 2, 4, 8, 16):
        for length in (8, 32, 128, 512):
            new, past = [length] * b, [0] * b
            t = prefill_features(new, past, knot=1024, attn_knot=65536) @ true_p
            pre.append({"new": new, "past": past, "seconds": float(t)})
    pre.append({"new": [64], "past": [0], "decode_rows": 8, "decode_context": 8 * 100,
                "seconds": float(prefill_features([64], [0], 8, 800, knot=1024,
                                                  attn_knot=65536) @ true_p)})
    for b in (1, 4, 16, 64, 128):
        for c in (64, 256, 1024):
            t = decode_features(b, b * c, knot=16) @ true_d
            dec.append({"rows": b, "context_sum": b * c, "seconds": float(t)})
    return pre, dec, true_p, true_d


def test_fit_recovers_a_noise_free_model(tmp_path):
    pre, dec, true_p, true_d = _synthetic_points(np.random.default_rng(0))
    prof = build_profile(pre, dec, {"name": "synthetic"})
    assert prof["prefill"]["fit"]["max_rel_err"] < 1e-6
    assert prof["decode"]["fit"]["max_rel_err"] < 1e-6
    path = save_profile(prof, tmp_path / "p.json")
    cm = load_profile(path)
    assert cm.name == "profile:synthetic"
    for p in pre:
        got = cm.prefill_time(np.array(p["new"]), np.array(p["past"]), p.get("decode_rows", 0),
                              p.get("decode_context", 0))
        assert got == pytest.approx(p["seconds"], rel=1e-6)
    times = cm.decode_times(16, 16 * 256, 5)
    want = [decode_features(16, 16 * (256 + i), knot=16) @ true_d for i in range(5)]
    np.testing.assert_allclose(times, want, rtol=1e-6)
    assert cm.decode_times(4, 100, 0).shape == (0,)
    assert cm.prefill_time(np.array([], dtype=int), np.array([], dtype=int)) == 0.0


def test_noisy_fit_is_close_and_coefficients_nonnegative():
    rng = np.random.default_rng(1)
    pre, dec, _, _ = _synthetic_points(rng)
    for p in pre + dec:
        p["seconds"] *= float(np.exp(rng.normal(0, 0.03)))
    prof = build_profile(pre, dec, {"name": "noisy"})
    assert prof["prefill"]["fit"]["mean_rel_err"] < 0.06
    assert prof["decode"]["fit"]["mean_rel_err"] < 0.06
    assert min(prof["prefill"]["coef"]) >= 0 and min(prof["decode"]["coef"]) >= 0


def _good():
    pre, dec, _, _ = _synthetic_points(np.random.default_rng(0))
    return build_profile(pre, dec, {"name": "x"})


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d.pop("format"), "format"),
    (lambda d: d.update(version=99), "version"),
    (lambda d: d.pop("decode"), "decode"),
    (lambda d: d["prefill"].update(coef=[1, 2]), "6 finite numbers"),
    (lambda d: d["decode"].update(coef=["a", 1, 2, 3]), "not numbers"),
    (lambda d: d["decode"].update(coef=[float("nan"), 1, 2, 3]), "finite"),
    (lambda d: d["prefill"].update(features=["1"]), "features"),
])
def test_malformed_profiles_are_user_errors(mutate, match):
    d = _good()
    mutate(d)
    with pytest.raises(UserError, match=match):
        profile_from_dict(d)


def test_unreadable_profile_files(tmp_path):
    with pytest.raises(UserError, match="no such profile"):
        load_profile(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not JSON"):
        load_profile(bad)
    bad.write_text(json.dumps([1, 2]))
    with pytest.raises(UserError, match="malformed"):
        load_profile(bad)


def test_builtin_cpu_profile_is_valid_and_monotone():
    names = builtin_profiles()
    assert "tiny-cpu-float32" in names
    cm = load_profile("tiny-cpu-float32")
    meta = cm.meta
    for key in ("torch", "transformers", "dtype", "created", "device", "model", "settings"):
        assert key in meta
    assert meta["device"]["type"] == "cpu" and meta["model"]["name"] == "tiny"
    assert list(cm.meta.get("format", "seqsched-profile")) and cm.name.startswith("profile:")
    small = cm.prefill_time(np.full(2, 16), np.zeros(2))
    big = cm.prefill_time(np.full(16, 128), np.zeros(16))
    assert 0 < small < big
    d = cm.decode_times(8, 8 * 100, 50)
    assert np.all(d > 0) and np.all(np.diff(d) >= 0)


def test_simulation_path_does_not_import_torch():
    code = ("import sys, seqsched.backends, seqsched.backends.profile, seqsched.backends.live, "
            "seqsched.app.live_cli, seqsched.backends.calibration; "
            "seqsched.backends.profile.load_profile('tiny-cpu-float32'); "
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "False"]


def test_fit_finds_the_attention_ridge():
    pre, dec, true_p, _ = _synthetic_points(np.random.default_rng(0))
    prof = build_profile(pre, dec, {"name": "ridge"})
    assert prof["prefill"]["knot"] == 1024 and prof["prefill"]["attn_knot"] == 65536
    np.testing.assert_allclose(prof["prefill"]["coef"], true_p, rtol=1e-5, atol=1e-12)
    big = profile_from_dict(prof)
    x = prefill_features([512] * 16, [0] * 16, knot=1024, attn_knot=65536)
    assert big.prefill_time(np.full(16, 512), np.zeros(16)) == pytest.approx(x @ true_p,
                                                                             rel=1e-5)


def test_profile_without_attention_ridge_still_loads():
    """A profile written before the attention ridge (5 prefill features) loads and prices a
    prefill exactly as it did."""
    prof = json.loads(json.dumps(_good()))
    prof["prefill"]["features"] = PREFILL_FEATURES[:5]
    prof["prefill"]["coef"] = prof["prefill"]["coef"][:5]
    prof["prefill"].pop("attn_knot", None)
    cm = profile_from_dict(prof)
    x = prefill_features([128] * 8, [0] * 8, knot=prof["prefill"]["knot"])[:5]
    assert cm.prefill_time(np.full(8, 128), np.zeros(8)) == pytest.approx(
        x @ np.asarray(prof["prefill"]["coef"]), rel=1e-12)


def test_feature_names_match_vectors():
    assert len(prefill_features([4], [0])) == len(PREFILL_FEATURES)
    assert decode_features(3, 30).shape[-1] == len(DECODE_FEATURES)


def test_step_overhead_applies_to_continuous_steps_only():
    pre, dec, _, true_d = _synthetic_points(np.random.default_rng(0))
    step_true = np.array([1e-3, 5e-5, 2e-7])
    steps = []
    for d, c in ((2, 64), (8, 128), (32, 256), (64, 64), (16, 512)):
        t = decode_features(d, d * c, knot=16) @ true_d + step_features(d, d * c) @ step_true
        steps.append({"kind": "step", "new": [], "past": [], "decode_rows": d,
                      "decode_context": d * c, "seconds": float(t)})
    prof = build_profile(pre, dec, {"name": "s"}, steps)
    np.testing.assert_allclose(prof["step"]["coef"], step_true, rtol=1e-4, atol=1e-10)
    cm = profile_from_dict(prof)
    static = cm.prefill_time(np.full(4, 64), np.zeros(4))
    assert static == pytest.approx(prefill_features([64] * 4, [0] * 4, knot=1024,
                                                    attn_knot=prof["prefill"]["attn_knot"])
                                   @ np.asarray(prof["prefill"]["coef"]), rel=1e-9)
    cont = cm.prefill_time(np.full(4, 64), np.full(4, 100))
    no_step = profile_from_dict({k: v for k, v in prof.items() if k != "step"})
    assert cont == pytest.approx(no_step.prefill_time(np.full(4, 64), np.full(4, 100))
                                 + cm.step_overhead(4, 400), rel=1e-9)
    pure = cm.prefill_time(np.array([], dtype=int), np.array([], dtype=int), 8, 8 * 128)
    assert pure == pytest.approx(steps[1]["seconds"], rel=1e-4)
    bad = dict(prof, step={"coef": [1, 2]})
    with pytest.raises(UserError, match="step.coef"):
        profile_from_dict(bad)
