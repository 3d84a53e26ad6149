"""The live executor's model plumbing: the explicit 4-D additive attention mask, one greedy
forward pass over a transformers `DynamicCache`, and the per-request KV caches of continuous
batching (`_gather` loads the rows' caches into one left-aligned batch cache, `_scatter`
stores each row's valid columns back). A mixin of `LiveExecutor` (backends.live.executor),
whose `__init__` sets the state it uses (`model`, `device`, `dtype`, `_kv`, `_min`,
`_cache_kw`, `_cache_config`)."""

from __future__ import annotations

import torch

from seqsched.sim.sequence import Seq


class KVCacheMixin:
    """Attention mask, forward pass and KV-cache gather / scatter for `LiveExecutor`."""

    def _mask(self, valid: torch.Tensor, q: int) -> torch.Tensor:
        """Additive [B, 1, q, KV] mask: a query attends to valid columns at or before its own
        (the new tokens are the last q columns); a padding query also attends to itself so no
        row is fully masked (its output is discarded; its K/V column stays masked for all)."""
        b, kv = valid.shape
        if q == 1:
            allowed = valid.clone()
            allowed[:, -1] = True
            allowed = allowed[:, None, None, :]
        else:
            cols = torch.arange(kv, device=self.device)
            qcol = cols[kv - q:]
            causal = cols[None, :] <= qcol[:, None]                       # [q, kv]
            allowed = valid[:, None, :] & causal[None]                    # [B, q, kv]
            allowed[:, torch.arange(q, device=self.device), qcol] = True
            allowed = allowed[:, None]
        mask = torch.zeros(allowed.shape, dtype=self.dtype, device=self.device)
        return mask.masked_fill_(~allowed, self._min)

    def _forward(self, ids: torch.Tensor, valid: torch.Tensor, pos: torch.Tensor, cache):
        out = self.model(input_ids=ids, attention_mask=self._mask(valid, ids.shape[1]),
                         position_ids=pos, use_cache=True, logits_to_keep=1,
                         **{self._cache_kw: cache})
        return out.logits[:, -1].argmax(-1)

    def _new_cache(self):
        from transformers import DynamicCache
        return DynamicCache(config=self._cache_config)
    def _gather(self, cache, seqs: list[Seq], past: list[int], big_p: int,
                valid_past: torch.Tensor) -> None:
        """Load the rows' caches, right-aligned at column big_p, into `cache`: per layer and
        K/V one concatenation of the rows' token-major caches and one `index_copy_` into the
        padded batch (no per-row kernel launches)."""
        have = [s.id for s, p in zip(seqs, past) if p > 0]
        first = self._kv[have[0]][0][0]                     # [len, kv_heads * head_dim]
        b = len(seqs)
        heads = self.model.config.num_key_value_heads
        flat = valid_past.flatten().nonzero().squeeze(1)
        for layer in range(len(self._kv[have[0]])):
            kv = []
            for j in (0, 1):
                packed = torch.cat([self._kv[i][layer][j] for i in have])
                pad = torch.zeros((b * big_p, first.shape[1]), dtype=first.dtype,
                                  device=first.device)
                pad.index_copy_(0, flat, packed)
                kv.append(pad.view(b, big_p, heads, -1).transpose(1, 2))
            self._set_layer(cache, layer, kv[0], kv[1])

    @staticmethod
    def _set_layer(cache, layer: int, keys: torch.Tensor, values: torch.Tensor) -> None:
        lay = cache.layers[layer] if layer < len(cache.layers) else None
        if lay is not None and hasattr(lay, "lazy_initialization") and hasattr(lay, "keys"):
            lay.lazy_initialization(keys, values)           # dtype/device, flags
            lay.keys, lay.values = keys, values             # no concatenation copy
        else:                                               # other cache layouts
            cache.update(keys, values, layer)

    def _scatter(self, cache, seqs: list[Seq], valid: torch.Tensor) -> None:
        """Store each row's valid KV columns (in order) as its own token-major cache
        [len, kv_heads * head_dim]: per layer and K/V one `index_select` of the valid
        positions into a packed tensor, split into per-row views."""
        b, width = valid.shape
        lengths = valid.sum(1).tolist()
        flat = valid.flatten().nonzero().squeeze(1)
        per_row: list[list] = [[] for _ in seqs]
        for lay in cache.layers:
            out = []
            for t in (lay.keys, lay.values):
                out.append(t.transpose(1, 2).reshape(b * width, -1).index_select(0, flat)
                           .split(lengths))
            lay.keys = lay.values = None                    # free the batch layer as we go
            for r in range(b):
                per_row[r].append((out[0][r], out[1][r]))
        for s, kv in zip(seqs, per_row):
            self._kv[s.id] = kv
