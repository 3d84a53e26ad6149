"""Predictions computed elsewhere: a CSV / JSONL / Parquet table (id -> length, optionally
quantiles), or a `predicted` column already in the trace (`seqsched predict annotate` writes it).
Both are free on the timeline: whoever computed them paid outside the simulation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.predictors.base import PredictorCost
from seqsched.common.errors import UserError
from seqsched.traces.request import Trace

QUANTILE_COLUMNS = {0.5: "predicted_p50", 0.9: "predicted_p90"}


def read_table(path: str | Path) -> pd.DataFrame:
    """CSV, JSONL/JSON (records or lines) or Parquet, by file extension."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such predictions file; give a CSV/JSONL/Parquet file with "
                        "columns id and predicted")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, dtype={"id": str})
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(path, lines=True, dtype={"id": str})
        if suffix == ".json":
            try:
                return pd.read_json(path, lines=True, dtype={"id": str})
            except ValueError:
                return pd.read_json(path, dtype={"id": str})
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
    except (ValueError, pd.errors.ParserError) as e:
        raise UserError(f"{path}: cannot parse ({str(e).splitlines()[0]}); "
                        "check that the file is valid CSV/JSONL/Parquet") from None
    raise UserError(f"{path}: unknown predictions format {suffix!r}; use .csv, .jsonl, .json "
                    "or .parquet")


def _lengths(values: pd.Series, where: str) -> np.ndarray:
    num = pd.to_numeric(values, errors="coerce")
    if num.isna().any():
        row = int(np.flatnonzero(num.isna().to_numpy())[0])
        raise UserError(f"{where}: row {row}: prediction {values.iloc[row]!r} is not a number; "
                        "fix or drop that row")
    return np.maximum(np.rint(num.to_numpy(dtype=float)), 1).astype(np.int64)


def _align(table: pd.DataFrame, trace: Trace, column: str, where: str) -> np.ndarray:
    if "id" not in table.columns or column not in table.columns:
        raise UserError(f"{where}: needs columns 'id' and {column!r}, has "
                        f"{', '.join(map(str, table.columns))}; rename or pass "
                        "--predictor-param column=...")
    ids = table["id"].astype(str)
    if ids.duplicated().any():
        raise UserError(f"{where}: duplicate id {ids[ids.duplicated()].iloc[0]!r}; "
                        "give one prediction per request")
    series = pd.Series(table[column].to_numpy(), index=ids.to_numpy())
    aligned = series.reindex(trace.df["id"].astype(str).to_numpy())
    missing = aligned.isna().to_numpy()
    if missing.any():
        first = trace.df["id"].iloc[int(np.flatnonzero(missing)[0])]
        raise UserError(f"{where}: no prediction for {int(missing.sum())} of {len(trace)} "
                        f"requests (first: id {first!r}); predict every request of the trace")
    return _lengths(aligned.reset_index(drop=True), where)


@dataclass
class FromFilePredictor:
    """Lengths from a table keyed by request id (`column`, default `predicted`; optional
    `predicted_p50` / `predicted_p90` give quantiles). `path` may also be a trace file that
    `seqsched predict annotate` wrote."""

    path: str = ""
    column: str = "predicted"
    name: str = "from-file"

    def __post_init__(self) -> None:
        if not self.path:
            raise UserError("predictor from-file needs a file: --predictor-param "
                            "path=PREDICTIONS.csv")
        self._table = read_table(self.path)

    def predict(self, trace: Trace) -> np.ndarray:
        return _align(self._table, trace, self.column, str(self.path))

    def predict_quantiles(self, trace: Trace) -> dict[float, np.ndarray]:
        return {q: _align(self._table, trace, c, str(self.path))
                for q, c in QUANTILE_COLUMNS.items() if c in self._table.columns}

    def cost(self, trace: Trace) -> PredictorCost:
        return PredictorCost()


@dataclass
class ColumnPredictor:
    """Lengths from a column of the trace itself (default `predicted`, as annotate writes)."""

    column: str = "predicted"
    name: str = "column"

    def predict(self, trace: Trace) -> np.ndarray:
        if self.column not in trace.df.columns:
            raise UserError(f"{trace.name}: no {self.column!r} column; run `seqsched predict "
                            "annotate` on the trace first, or choose another predictor")
        return _lengths(trace.df[self.column], trace.name)

    def predict_quantiles(self, trace: Trace) -> dict[float, np.ndarray]:
        return {q: _lengths(trace.df[c], trace.name)
                for q, c in QUANTILE_COLUMNS.items() if c in trace.df.columns}

    def cost(self, trace: Trace) -> PredictorCost:
        return PredictorCost()
