"""Shared pieces of the format modules: the `Format` descriptor, the `_Converter` record,
column-name matching and row-id helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Format:
    name: str
    description: str
    required: tuple[str, ...]        # source columns / keys that identify the format
    case_insensitive: bool = True


def _key(col: str) -> str:
    return str(col).strip().lower()


def _resolve(columns: Iterable[str], wanted: Iterable[str]) -> dict[str, str]:
    """Map each wanted column to the file's actual column name (case/space-insensitive)."""
    by_key = {}
    for c in columns:
        by_key.setdefault(_key(c), c)
    return {w: by_key[_key(w)] for w in wanted if _key(w) in by_key}


@dataclass(frozen=True)
class _Converter:
    convert: Callable        # (df, cmap, src, locate, options, rownums) -> (df, names, keep)
    string_keys: frozenset = frozenset()   # CSV columns to read as text
    streams_window: bool = False           # arrival_of() works batch by batch
    arrival_of: Callable | None = None     # (batch_df, cmap, state) -> seconds array
    options: tuple[str, ...] = ()


def _ids(rownums: np.ndarray) -> pd.Series:
    """Request ids = the row's position in the file (stable across slices of one file)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    arr = pc.cast(pa.array(np.asarray(rownums, dtype=np.int64)), pa.string())
    return pd.Series(arr.to_pandas(), dtype="str")


def _extras(df: pd.DataFrame, used: Iterable[str]) -> dict[str, Any]:
    used = set(used)
    return {c: df[c].to_numpy() if df[c].dtype != object else df[c].tolist()
            for c in df.columns if c not in used}
