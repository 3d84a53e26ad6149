"""Proxy model definition: `ProxyConfig` (head kind, training settings, learned vocabulary and
scaling), the wide-and-deep head module, its loss and the decoding of head outputs into point
predictions and quantiles.

torch is imported lazily."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from seqsched.common.errors import UserError
from seqsched.predictors.proxy.features import DEFAULT_ENCODER, Features

FORMAT = "seqsched-proxy"
HEADS = ("regression", "classification", "quantile")
DECODES = ("median", "within")


@dataclass
class ProxyConfig:
    encoder: str = DEFAULT_ENCODER
    max_length: int = 64
    pooling: str | None = None
    head: str = "classification"
    target: str = "max-over-samples"
    round_to: int = 0                    # >0: train on the target rounded up to this multiple
    quantiles: tuple = (0.5, 0.9)
    bucket: int = 50                     # classification bucket width
    decode: str = "median"               # classification point: "median" or "within"
    within: tuple = (50, 100)            # decode="within": the tolerances whose hit chance
                                         # (summed) the point maximises
    max_tokens: int = 512                # classification range / prediction clip
    hidden: int = 128
    dropout: float = 0.1
    bag: bool = True
    min_df: int = 2
    epochs: int = 8
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-2
    ensemble: int = 3
    seed: int = 0
    calibration_frac: float = 0.1       # regression head: held out to fit residual quantiles
    # end-to-end fine-tuning of the encoder with the head (one net, no ensemble)
    finetune_encoder: bool = False
    finetune_layers: int = 0            # 0: every layer; K: only the top K (the lower layers'
                                        # states are computed once and cached: ~3x faster)
    finetune_epochs: int = 3
    finetune_batch_size: int = 32
    encoder_lr: float = 5e-5
    finetuned_encoder: str = ""         # set by save: the tuned weights' folder in the model dir
    vocab: list = field(default_factory=list)
    idf: list = field(default_factory=list)
    scalar_mean: list = field(default_factory=list)
    scalar_std: list = field(default_factory=list)
    residual_quantiles: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.head not in HEADS:
            raise UserError(f"unknown proxy head {self.head!r}; choose one of {', '.join(HEADS)}")
        if self.decode not in DECODES:
            raise UserError(f"unknown proxy decode {self.decode!r}; choose one of "
                            f"{', '.join(DECODES)}")
        if self.decode == "within" and self.head != "classification":
            raise UserError("decode=within needs the classification head (a full predictive "
                            "distribution)")
        if self.head == "quantile" and 0.5 not in self.quantiles:
            raise UserError("the quantile head needs 0.5 among its quantiles (the point "
                            "prediction is the median)")

    @property
    def n_out(self) -> int:
        if self.head == "regression":
            return 1
        if self.head == "quantile":
            return len(self.quantiles)
        return int(math.ceil(self.max_tokens / self.bucket))


def _head_module(cfg: ProxyConfig, emb_dim: int, n_scalars: int):
    import torch
    from torch import nn

    class WideDeep(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(emb_dim + n_scalars, cfg.hidden)
            self.bag = nn.EmbeddingBag(max(len(cfg.vocab), 1), cfg.hidden, mode="sum") \
                if cfg.bag else None
            self.drop = nn.Dropout(cfg.dropout)
            self.out = nn.Linear(cfg.hidden, cfg.n_out)
            self.register_buffer("offset", torch.zeros(cfg.n_out))
            if cfg.head in ("regression", "quantile"):
                self.offset.fill_(math.log(100.0))

        def forward(self, emb, scalars, ids, offsets, weights):
            h = self.dense(torch.cat([emb, scalars], 1))
            if self.bag is not None:
                h = h + self.bag(ids, offsets, per_sample_weights=weights)
            o = self.out(self.drop(torch.nn.functional.gelu(h))) + self.offset
            if cfg.head == "quantile" and o.shape[1] > 1:   # monotone in q
                o = torch.cat([o[:, :1], o[:, :1] + torch.cumsum(
                    torch.nn.functional.softplus(o[:, 1:]), 1)], 1)
            return o

    return WideDeep()


def _tensors(f: Features, scalar_mean, scalar_std):
    import torch

    s = (f.scalars - np.asarray(scalar_mean, np.float32)) / np.asarray(scalar_std, np.float32)
    return (torch.from_numpy(np.ascontiguousarray(f.emb)), torch.from_numpy(s.astype(np.float32)),
            torch.from_numpy(f.bag_ids), torch.from_numpy(f.bag_offsets),
            torch.from_numpy(f.bag_weights))


def _loss(cfg: ProxyConfig, out, y):
    import torch

    if cfg.head == "regression":
        return (out[:, 0] - torch.log(y)).abs().mean()
    if cfg.head == "quantile":
        q = torch.tensor(cfg.quantiles, dtype=out.dtype)
        d = torch.log(y)[:, None] - out
        return torch.maximum(q * d, (q - 1) * d).mean() * 2
    cls = torch.clamp(((y - 1) // cfg.bucket).long(), 0, cfg.n_out - 1)
    return torch.nn.functional.cross_entropy(out, cls)


def _decode(cfg: ProxyConfig, outs: list[np.ndarray]) -> tuple[np.ndarray, dict]:
    """Ensemble outputs -> (point prediction as float, {q: values})."""
    if cfg.head == "classification":
        p = np.mean([np.exp(o - o.max(1, keepdims=True)) /
                     np.exp(o - o.max(1, keepdims=True)).sum(1, keepdims=True) for o in outs], 0)
        cdf = np.cumsum(p, 1)

        def q_of(q):
            k = np.argmax(cdf >= q, 1)
            below = np.where(k > 0, cdf[np.arange(len(k)), k - 1], 0.0)
            frac = (q - below) / np.maximum(p[np.arange(len(k)), k], 1e-9)
            return (k + np.clip(frac, 0, 1)) * cfg.bucket

        quant = {q: q_of(q) for q in cfg.quantiles}
        if cfg.decode == "within":
            return decode_within(p, cfg.bucket, cfg.within, cfg.max_tokens), quant
        return q_of(0.5), quant
    o = np.mean(outs, 0)
    if cfg.head == "quantile":
        quant = {q: np.exp(o[:, i]) for i, q in enumerate(cfg.quantiles)}
        return quant[0.5], quant
    point = np.exp(o[:, 0])
    quant = {float(q): point * math.exp(r) for q, r in cfg.residual_quantiles.items()}
    return point, quant


def decode_within(p: np.ndarray, bucket: int, tolerances=(50, 100), max_tokens: int = 512,
                  step: int = 2, chunk: int = 4096) -> np.ndarray:
    """The point c (on a `step`-token grid in [1, max_tokens]) that maximises
    sum_w P(|y - c| <= w) under bucket probabilities `p` (mass uniform inside a bucket).

    The median minimises expected absolute error; Acc-50 / Acc-100 reward the centre of the
    densest window instead, which for a skewed length distribution sits nearer the mode."""
    n, k = p.shape
    grid = np.arange(1, max_tokens + 1, step, dtype=np.float64)
    edges = np.concatenate([np.zeros((n, 1)), np.cumsum(p, 1)], 1)     # CDF at bucket edges
    out = np.empty(n)
    for lo in range(0, n, chunk):
        pp, ee = p[lo:lo + chunk], edges[lo:lo + chunk]
        rows = np.arange(len(pp))[:, None]

        def cdf(x):                     # piecewise-linear CDF at the points x (one per column)
            pos = np.clip(x / bucket, 0, k)
            idx = np.minimum(pos.astype(np.int64), k - 1)
            return ee[rows, idx[None, :]] + (pos - idx)[None, :] * pp[rows, idx[None, :]]

        score = sum(cdf(grid + w) - cdf(grid - w) for w in tolerances)
        # ties (a flat top: the windows cover the same mass) go to the middle of the first run
        top = score >= score.max(1, keepdims=True) - 1e-9
        first = np.argmax(top, 1)
        after = ~top & (np.arange(len(grid))[None, :] > first[:, None])
        end = np.where(after.any(1), np.argmax(after, 1), len(grid))
        out[lo:lo + chunk] = grid[(first + end - 1) // 2]
    return out



def _emb_dim(tensors: dict, k: int, n_scalars: int) -> int:
    return tensors[f"{k}.dense.weight"].shape[1] - n_scalars
