"""The cost-model contract every timing source implements (roofline, fitted profile).

Two calls cover every step the engine runs:
- `prefill_time`: ONE iteration that processes prompt chunks (`new_tokens[r]` tokens of row r,
  on top of `past_tokens[r]` already cached) and, in a mixed continuous batch, one decode token
  for each of `decode_rows` other rows whose contexts sum to `decode_context`;
- `decode_times`: `iterations` consecutive pure-decode iterations of `rows` rows whose summed
  context is `context_sum` at the first of them and grows by `rows` per iteration; returns the
  per-iteration seconds (vectorised: k iterations cost one numpy call, not a Python loop).
A decode row's *context* is the number of positions it attends to in that iteration: its cached
tokens plus the new one (prompt + tokens generated so far). A padded static batch is a prefill
of B rows x longest prompt P, then decode iterations with context_sum = B * (P + 1) at the first.
A model whose `wants_decode_spread` is true (the kernel profile's skew correction) also gets the
decode rows' longest and shortest context: `decode_max`/`decode_min` keywords of
`prefill_time`, `context_max`/`context_min` of `decode_times` (at its first iteration; each
grows by one per iteration). Engines pass them only to such a model.
A model whose `wants_dp_tokens` is true (the kernel profile) times a step of a DP lockstep
group (sim/lockstep.py): `padded_time(alone_s, tokens, rows, padded_tokens, moe_tokens,
moe_largest)` is the iteration that costs `alone_s` on its own run with its dense layers over
`padded_tokens` (vLLM's DP padding) and its MoE layers over `moe_tokens` (what they gather from
the whole group; `moe_largest`, the largest rank's count, times the EP collectives), and
`dummy_time(padded_tokens, moe_tokens, moe_largest)` an idle rank's dummy pass.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class CostModel(Protocol):
    name: str

    def prefill_time(self, new_tokens: np.ndarray, past_tokens: np.ndarray,
                     decode_rows: int = 0, decode_context: int = 0) -> float: ...

    def decode_times(self, rows: int, context_sum: int, iterations: int) -> np.ndarray: ...
