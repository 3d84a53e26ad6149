"""Tables a reader compares by eye: no exponent for thousands (tabulate's ".3g" printed 1,917
tokens/s as "1.92e+03"), and below 10**digits exactly what ".3g" printed before."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from tabulate import tabulate

from seqsched.analysis.tables import github_table


def cells(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_thousands_are_whole_numbers_not_exponents():
    df = pd.DataFrame({"label": ["a", "b", "c", "d"], "out tok/s": [957.0, 1917.4, 999.6, 2.5e6],
                       "preempt": [0, 5819, 3, 4]})
    assert [row[1:] for row in cells(github_table(df))] == [
        ["957", "0"], ["1917", "5819"], ["1000", "3"], ["2500000", "4"]]
    assert "e+" not in github_table(df)
    assert cells(github_table(df.assign(x=[12345.6, 0.0, 1.0, 2.0]), digits=4))[0][-1] == "12346"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(-999.4, 999.4, allow_nan=False, allow_subnormal=False),
                          st.floats(-1e-3, 1e-3, allow_nan=False, allow_subnormal=False),
                          st.sampled_from([float("nan"), float("inf"), 0.0, -0.0])),
                min_size=1, max_size=6))
def test_below_a_thousand_the_table_is_unchanged(values):
    df = pd.DataFrame({"label": [f"r{i}" for i in range(len(values))], "v": values,
                       "obj": pd.Series(values, dtype=object)})
    assert github_table(df) == tabulate(df, headers="keys", tablefmt="github", showindex=False,
                                        floatfmt=".3g")


def test_the_run_table_shows_thousands_of_tokens_per_second():
    """`seqsched simulate` on an H100 printed "1e+03" out tok/s for 1,004."""
    from seqsched.analysis.report import terminal_table
    summary = pd.DataFrame({"label": ["fcfs", "sjf"], "throughput_rps": [7.84, 7.9],
                            "output_tokens_per_s": [1004.2, 1917.0]})
    rows = cells(terminal_table(summary, baseline="fcfs"))
    assert [r[3] for r in rows] == ["1004", "1917"] and [r[2] for r in rows] == ["1", "1.01"]
