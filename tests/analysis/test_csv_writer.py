"""analysis.csv_writer.write_csv writes exactly the bytes of DataFrame.to_csv(index=False)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from seqsched.analysis import csv_writer
from seqsched.analysis.csv_writer import write_csv

EDGE_FLOATS = [0.0, -0.0, np.nan, np.inf, -np.inf, 5e-324, 2.2250738585072014e-308,
               1.7976931348623157e308, 1e16, 9999999999999998.0, 1e-4, 1e-5, 0.1 + 0.2, 1 / 3,
               123456789.125, -1e-300, 1.0, 100.0, 2.5e-7]


def same_bytes(df, tmp_path, name="x"):
    a, b = tmp_path / f"{name}_pandas.csv", tmp_path / f"{name}_fast.csv"
    df.to_csv(a, index=False)
    write_csv(df, b)
    return a.read_bytes() == b.read_bytes()


def _no_pandas(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the fast path fell back to pandas")
    monkeypatch.setattr(pd.DataFrame, "to_csv", refuse)


def test_a_records_like_frame_takes_the_fast_path_and_matches_pandas(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 3 * csv_writer.CHUNK // 2 + 7                      # more than one chunk
    df = pd.DataFrame({"id": [f"req-{i}" for i in range(n)],
                       "replica": rng.integers(0, 4, n),
                       "arrival_s": np.cumsum(rng.exponential(0.2, n)),
                       "finish_s": np.where(rng.random(n) < 0.01, np.nan, rng.random(n) * 1e3),
                       "tokens": rng.integers(1, 2**40, n, dtype=np.int64),
                       "truncated": rng.random(n) < 0.5})
    expected = tmp_path / "pandas.csv"
    df.to_csv(expected, index=False)
    _no_pandas(monkeypatch)
    write_csv(df, tmp_path / "fast.csv")
    assert (tmp_path / "fast.csv").read_bytes() == expected.read_bytes()


def test_edge_floats_are_written_as_pandas_writes_them(tmp_path):
    df = pd.DataFrame({"x": EDGE_FLOATS, "y": EDGE_FLOATS[::-1],
                       "s": pd.array([f"v{i}" for i in range(len(EDGE_FLOATS))], dtype="str")})
    assert same_bytes(df, tmp_path)
    assert b"-0.0," in (tmp_path / "x_fast.csv").read_bytes()


@pytest.mark.parametrize("frame", [
    pd.DataFrame({"id": ["a,b", "c"], "x": [1.0, 2.0]}),            # text that needs quoting
    pd.DataFrame({"id": ['say "hi"', "c"], "x": [1.0, 2.0]}),
    pd.DataFrame({"id": ["line\nbreak", "c"], "x": [1.0, 2.0]}),
    pd.DataFrame({"id": ["a", None], "x": [1.0, 2.0]}),              # a missing text value
    pd.DataFrame({"x": [1.5, np.nan]}),                               # one column
    pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "x": [1.0, 2.0]}),
    pd.DataFrame({"a": np.array([1.5, 2.25], dtype=np.float32), "x": [1.0, 2.0]}),
    pd.DataFrame({"a,b": [1, 2], "x": [1.0, 2.0]}),                  # a label that needs quoting
    pd.DataFrame({0: [1, 2], "x": [1.0, 2.0]}),
    pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02"]), "x": [1.0, 2.0]}),
    pd.DataFrame({"o": [1, "two"], "x": [1.0, 2.0]}),
    pd.DataFrame({"a": [], "x": []}),
])
def test_frames_only_pandas_writes_right_fall_back_to_it(frame, tmp_path):
    assert same_bytes(frame, tmp_path)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-2**63, 2**63 - 1), st.booleans(),
                          st.text(max_size=6)), min_size=1, max_size=40))
def test_any_frame_of_these_dtypes_matches_pandas(rows):
    import tempfile
    from pathlib import Path
    f, i, b, s = map(list, zip(*rows))
    df = pd.DataFrame({"f": np.array(f, dtype=np.float64), "i": np.array(i, dtype=np.int64),
                       "b": np.array(b, dtype=bool), "s": s})
    with tempfile.TemporaryDirectory() as d:
        assert same_bytes(df, Path(d))
