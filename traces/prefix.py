"""Prefix identity of a trace's requests: the chained hash of every KV block's token content,
so a prefix cache can tell which blocks two requests share.

As vLLM v1 hashes blocks (`vllm/v1/core/kv_cache_utils.py: hash_block_tokens`), block j's hash
is hash((hash of block j-1, content of block j)): equal hashes mean equal content AND equal
everything before it. What stands for a block's content depends on what the trace carries,
first match wins:

- token ids (`input_tok_ids`, `prompt_token_ids` or `token_ids`: a list of ints per request):
  the block's token ids themselves, exactly vLLM's key;
- Mooncake `hash_ids` (kvcache-ai/Mooncake traces: one id per 512-token block of the input,
  equal ids = equal content and prefix): (id of the 512-token block, position inside it);
- `prefix_group` with `prefix_tokens` (a shared system prompt of that many tokens per group,
  as inference-perf's shared-prefix workload builds): (group, position) inside the prefix;
- `session_id` (a multi-turn conversation whose turn k+1 prompt is turn k's prompt, its
  answer and a new message, arriving in turn order): (session, block position) for prompt
  AND output blocks past the group prefix, so the next turn re-uses the last answer's KV.

Blocks nothing identifies (the rest of a prompt, generated tokens) get a key unique to their
request: they can still be re-used by the same request after a preemption, as in vLLM.
Python's `hash` of tuples of ints is the same in every process (no string hashing is involved:
string session ids are numbered first), so runs are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from seqsched.traces.request import Trace

TOKEN_ID_COLUMNS = ("input_tok_ids", "prompt_token_ids", "token_ids")
MOONCAKE_BLOCK = 512          # tokens per Mooncake hash id
SOURCES = ("token ids", "Mooncake hash_ids", "session ids", "shared-prefix groups")


def _numbered(col: pd.Series) -> np.ndarray:
    """Any ids (strings too) -> ints, in order of first appearance (-1 for missing)."""
    codes, _ = pd.factorize(col, sort=False)
    return codes.astype(np.int64)


@dataclass
class PrefixSource:
    """Computes each request's chained block hashes from the trace's prefix information."""

    kind: str                                   # one of SOURCES
    token_ids: list | None = None
    hash_ids: list | None = None
    session: np.ndarray | None = None
    group: np.ndarray | None = None
    group_tokens: np.ndarray | None = None

    def block_hashes(self, i: int, tokens: int, block_size: int) -> list[int]:
        """Hashes of request `i`'s first tokens // block_size full blocks (prompt + output)."""
        n = tokens // block_size
        out = []
        parent = 0
        for j in range(n):
            parent = hash((parent, self._content(i, j, block_size)))
            out.append(parent)
        return out

    def _content(self, i: int, j: int, bs: int):
        start = j * bs
        if self.token_ids is not None:
            ids = self.token_ids[i]
            if ids is not None and start + bs <= len(ids):
                return tuple(int(t) for t in ids[start:start + bs])
        elif self.hash_ids is not None:
            ids = self.hash_ids[i]
            k = start // MOONCAKE_BLOCK
            if ids is not None and k < len(ids) and (start + bs - 1) // MOONCAKE_BLOCK == k:
                return (-2, int(ids[k]), start % MOONCAKE_BLOCK)
        else:
            if self.group is not None and self.group[i] >= 0 and start + bs <= self.group_tokens[i]:
                return (-4, int(self.group[i]), j)
            if self.session is not None and self.session[i] >= 0:
                return (-3, int(self.session[i]), j)
        return (-1, i, j)                        # this request only


def _lists(col: pd.Series) -> list:
    return [None if v is None or (isinstance(v, float) and np.isnan(v)) else list(v)
            for v in col.tolist()]


def prefix_source(trace: Trace) -> PrefixSource | None:
    """The trace's prefix information, or None when it carries none."""
    df = trace.df
    for col in TOKEN_ID_COLUMNS:
        if col in df:
            return PrefixSource("token ids", token_ids=_lists(df[col]))
    if "hash_ids" in df:
        return PrefixSource("Mooncake hash_ids", hash_ids=_lists(df["hash_ids"]))
    grouped = "prefix_group" in df and "prefix_tokens" in df
    if "session_id" in df or grouped:
        return PrefixSource(
            "shared-prefix groups" if grouped else "session ids",
            session=_numbered(df["session_id"]) if "session_id" in df else None,
            group=_numbered(df["prefix_group"]) if grouped else None,
            group_tokens=df["prefix_tokens"].to_numpy(dtype=np.int64) if grouped else None)
    return None
