"""The kernel profile's float lookups (`Line`, `Plane`, and `Op`/`Grid2`/`Grid4` on few
queries) return the very doubles of the numpy reference (`interp1`/`interp2`, the tables with
`kernel_tables.FAST` off), on random axes, tables and queries below, on and beyond the grid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqsched.backends import kernel_tables
from seqsched.backends.interp import Line, Plane, interp1, interp2
from seqsched.backends.kernel_tables import Grid2, Grid4, Op, Slice

VALUE = st.floats(-1e6, 1e6, allow_nan=False, width=64)


@st.composite
def axis(draw, max_size: int = 6):
    xs = draw(st.lists(st.floats(0, 1e5, allow_nan=False), min_size=1, max_size=max_size,
                       unique=True))
    return np.array(sorted(xs))


@st.composite
def queries(draw, ax, n_max: int = 8):
    """Queries below, on, between and above the axis samples (whole and fractional)."""
    picks = st.one_of(st.sampled_from([float(v) for v in ax]),
                      st.floats(-10.0, float(ax[-1]) * 3 + 10, allow_nan=False),
                      st.integers(0, int(ax[-1]) * 2 + 5).map(float))
    return np.array(draw(st.lists(picks, min_size=1, max_size=n_max)))


def bits(a) -> list:
    return [float(v).hex() for v in np.ravel(a)]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_line_and_op_equal_interp1(data):
    ax = data.draw(axis())
    us = np.array(data.draw(st.lists(VALUE, min_size=len(ax), max_size=len(ax))))
    q = data.draw(queries(ax))
    line = Line(ax, us)
    assert bits([line(v) for v in q]) == bits(interp1(ax, us, q))
    op = Op("k", data.draw(st.floats(0.5, 200)), ax, us)
    ref = op.count * np.maximum(interp1(ax, us, q), 0.0) * 1e-6
    assert bits(op.seconds(q)) == bits(ref)                  # few queries: the float path
    assert bits([op.seconds(float(v)) for v in q]) == bits(ref)      # one at a time
    assert bits([op.seconds(np.int64(v)) for v in q if v == int(v)]) == bits(
        [r for v, r in zip(q, ref) if v == int(v)])


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_plane_and_grid2_equal_interp2(data):
    a0, a1 = data.draw(axis(4)), data.draw(axis(5))
    us = np.array(data.draw(st.lists(VALUE, min_size=a0.size * a1.size,
                                     max_size=a0.size * a1.size))).reshape(a0.size, a1.size)
    q0 = data.draw(queries(a0))
    q1 = data.draw(queries(a1, n_max=1)) if data.draw(st.booleans()) else \
        data.draw(queries(a1, n_max=len(q0)))[:len(q0)]
    if q1.size < q0.size:
        q1 = np.resize(q1, q0.shape)
    plane = Plane(a0, a1, us)
    assert bits([plane(u, v) for u, v in zip(q0, q1)]) == bits(interp2(a0, a1, us, q0, q1))
    g = Grid2(a0, a1, us)
    ref = np.maximum(interp2(a0, a1, us, q0, q1), 0.0)
    assert bits(g(q0, q1)) == bits(ref)
    assert bits(g(float(q0[0]), q1)) == bits(np.maximum(interp2(a0, a1, us, q0[0], q1), 0.0))


@st.composite
def grid4(draw):
    """A ragged 4-D table: (pc, nd) pairs, each with kp rows of their own kd axes."""
    pcs = draw(st.lists(st.integers(0, 4096), min_size=1, max_size=3, unique=True))
    nds = draw(st.lists(st.integers(0, 256), min_size=1, max_size=3, unique=True))
    pairs = [(p, n) for p in pcs for n in nds if draw(st.booleans())] or [(pcs[0], nds[0])]
    slices = {}
    for key in pairs:
        kp = draw(axis(3))
        rows = []
        for _ in kp:
            kd = draw(axis(4))
            rows.append((kd, np.array(draw(st.lists(VALUE, min_size=kd.size,
                                                    max_size=kd.size)))))
        slices[key] = Slice(kp, rows)
    return Grid4(slices), pcs, nds


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_grid4_few_equals_numpy(data):
    g, pcs, nds = data.draw(grid4())
    pc = data.draw(st.one_of(st.sampled_from(pcs), st.integers(0, 6000))) * 1.0
    nd = data.draw(st.one_of(st.sampled_from(nds), st.integers(0, 300))) * 1.0
    kp = data.draw(st.floats(-5, 3e5, allow_nan=False))
    kd = data.draw(queries(np.array([0.0, 1e5]), n_max=12))
    fast = g(pc, kp, nd, kd)
    kernel_tables.FAST = False
    try:
        ref = g(pc, kp, nd, kd)
    finally:
        kernel_tables.FAST = True
    assert fast.shape == ref.shape
    assert bits(fast) == bits(ref)


def test_many_queries_take_numpy_and_agree():
    """Past SMALL queries the numpy path runs; both paths agree element by element."""
    ax, us = np.array([1.0, 4.0, 16.0, 64.0]), np.array([3.0, 5.0, 17.0, 40.0])
    op = Op("k", 32.0, ax, us)
    q = np.linspace(-3.0, 200.0, 500)
    assert bits(op.seconds(q)) == bits([op.seconds(float(v)) for v in q])
    assert op.seconds(10.0) == pytest.approx(32 * (5 + 6 / 12 * 12) * 1e-6)     # by hand: 11 us
    assert op.seconds(0.0) == pytest.approx(32 * 3e-6)                          # clamped below
    assert op.seconds(128.0) == pytest.approx(32 * (40 + 64 / 48 * 23) * 1e-6)  # extrapolated


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_skew_few_equals_numpy(data):
    """The skew table's list lookup picks the same buckets as searchsorted; NaN -> default."""
    from seqsched.backends.skew import AXES, SkewTable
    edges = {a: np.array(sorted(data.draw(st.lists(st.integers(0, 5000), min_size=1,
                                                   max_size=4, unique=True))), dtype=float)
             for a in AXES}
    edges["skew_rate"] = np.array(sorted(data.draw(st.lists(
        st.floats(0.0, 1.0), min_size=1, max_size=4, unique=True))))
    shape = (2,) + tuple(len(edges[a]) for a in AXES)
    flat = data.draw(st.lists(st.one_of(st.just(float("nan")), st.floats(-1, 2)),
                              min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    table = SkewTable(0.3, edges, {0: 0, 512: 1}, np.array(flat).reshape(shape))
    k = data.draw(st.integers(1, 10))
    rate = np.array(data.draw(st.lists(st.floats(-0.5, 1.5), min_size=k, max_size=k)))
    kv = np.array(data.draw(st.lists(st.integers(0, 9000).map(float), min_size=k, max_size=k)))
    pc, n, kp = (data.draw(st.sampled_from([0, 512, 7])), data.draw(st.integers(0, 6000)),
                 data.draw(st.integers(0, 6000)))
    few = table.lookup(pc, n, rate, kv, kp)
    many = table.lookup(pc, n, np.resize(rate, 200), np.resize(kv, 200), kp)[:k]
    assert bits(few) == bits(many)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_moe_memo_returns_the_numpy_double_for_every_argument_set(data):
    """The MoE table memoises one-iteration calls: each (tokens, gathered, largest) gets the
    double its numpy path gives, whatever was asked before (no key collides)."""
    from seqsched.backends.moe_profile import expert_parallel, moe_from_dict
    section = {"count": 3, "n_experts": 8, "top_k": 2,
               "routing": data.draw(st.sampled_from(["uniform", "pigeonhole"])),
               "rows": [{"experts": 2, "tokens": [1, 100], "us": [11, 110]},
                        {"experts": 8, "tokens": [2, 100], "us": [24, 220]}]}
    table = moe_from_dict(section)
    if data.draw(st.booleans()):
        table = expert_parallel(table, 2, 2, 100.0, 5.0, 64)
    calls = data.draw(st.lists(st.tuples(st.integers(0, 300),
                                         st.one_of(st.none(), st.integers(1, 900)),
                                         st.one_of(st.none(), st.integers(1, 300))),
                               min_size=1, max_size=12))
    for tokens, gathered, largest in calls * 2:             # the second pass hits the memo
        got = table.seconds(tokens, gathered, largest)
        want = table._seconds(float(tokens), gathered, largest)
        assert np.ndim(got) == 0 and bits(got) == bits(want)


PROFILES = {"rtxpro6000-llama-3.1-8b-tp1": "llama-3.1-8b",          # grid4 + skew
            "rtxpro6000-llama-3.1-8b-tp1-aic": "llama-3.1-8b",      # split grids
            "h100-llama-2-70b-tp4": "llama-2-70b",                  # Vidur, all-reduce
            "rtxpro6000-qwen3-30b-a3b-tp1": "qwen3-30b-a3b"}        # grid4 + MoE
_MODELS: dict = {}


def _profile(name: str):
    if name not in _MODELS:
        from seqsched.backends.profile_registry import load_cost_profile
        from seqsched.backends.specs import get_model
        _MODELS[name] = load_cost_profile(name, get_model(PROFILES[name]))
    return _MODELS[name]


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_built_in_profiles_step_times_equal_the_numpy_path(data):
    """prefill_time and decode_times of the shipped profiles, float path vs numpy path."""
    m = _profile(data.draw(st.sampled_from(sorted(PROFILES))))
    k = data.draw(st.integers(0, 6))
    chunks = data.draw(st.lists(st.integers(1, 3000), max_size=k))
    past = data.draw(st.lists(st.integers(0, 9000), min_size=len(chunks),
                              max_size=len(chunks)))
    rows = data.draw(st.integers(0 if chunks else 1, 300))
    lo = data.draw(st.integers(1, 20000))
    hi = lo + data.draw(st.integers(0, 20000))
    ctx = rows * lo + data.draw(st.integers(0, rows * (hi - lo)))
    spread = data.draw(st.booleans())
    iters = data.draw(st.integers(1, 80))

    def both():
        pre = m.prefill_time(np.array(chunks, dtype=np.int64), np.array(past, dtype=np.int64),
                             rows, ctx, *((hi, lo) if spread and rows else ()))
        dec = m.decode_times(rows, ctx, iters, *((hi, lo) if spread else ())) if rows else []
        return bits([pre]) + bits(dec)
    fast = both()
    kernel_tables.FAST = False
    try:
        assert fast == both()
    finally:
        kernel_tables.FAST = True
