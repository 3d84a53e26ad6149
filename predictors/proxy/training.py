"""Proxy training: the head(s) on frozen embeddings (`train_model`, behind `ProxyModel.train`)
and end-to-end fine-tuning of the encoder with one head (`_finetune`).

torch is imported lazily."""

from __future__ import annotations

import math

import numpy as np

from seqsched.predictors.proxy.features import Vocabulary, ngrams, split_prompt, user_text
from seqsched.predictors.proxy.model import ProxyConfig, _head_module, _loss, _tensors


def train_model(cls, prompts: list[str], prompt_tokens: np.ndarray, target: np.ndarray,
                cfg: ProxyConfig | None = None, progress: bool = False,
                use_cache: bool = True, finetune_encoder: bool | None = None,
                epochs: int | None = None, max_length: int | None = None):
    """`ProxyModel.train` (`cls` is the model class): train the head(s) on frozen embeddings,
    or (`finetune_encoder`) the encoder and one head end to end; `epochs` / `max_length`
    override the config's (fine-tuning epochs when fine-tuning)."""
    import torch

    cfg = cfg or ProxyConfig()
    if finetune_encoder is not None:
        cfg.finetune_encoder = bool(finetune_encoder)
    if epochs is not None:
        if cfg.finetune_encoder:
            cfg.finetune_epochs = int(epochs)
        else:
            cfg.epochs = int(epochs)
    if max_length is not None:
        cfg.max_length = int(max_length)
    cfg.validate()
    target = np.asarray(target, np.float64)
    if len(target) != len(prompts):
        raise ValueError("one target per prompt")
    if cfg.round_to > 0:
        target = -(-target // cfg.round_to) * cfg.round_to
    target = np.clip(target, 1, None)
    if cfg.bag:
        vocab = Vocabulary.fit([ngrams(split_prompt(p)[0]) for p in prompts], cfg.min_df)
        cfg.vocab, cfg.idf = vocab.terms, [round(x, 6) for x in vocab.idf]
    model = cls(cfg)
    if cfg.finetune_encoder:
        cfg.ensemble = 1
        cfg.calibration_frac = cfg.calibration_frac if cfg.head == "regression" else 0.0
        _finetune(model, prompts, prompt_tokens, target, progress=progress)
        return model
    feats, _ = model.features(prompts, prompt_tokens, progress=progress, use_cache=use_cache)
    cfg.scalar_mean = feats.scalars.mean(0).round(6).tolist()
    cfg.scalar_std = np.maximum(feats.scalars.std(0), 1e-6).round(6).tolist()
    calib, keep = _calibration_split(cfg, len(target))
    if calib is not None:
        calib_feats, calib_target = feats.subset(calib), target[calib]
        feats, target = feats.subset(keep), target[keep]
    y = torch.tensor(target, dtype=torch.float32)
    n = len(feats)
    steps = cfg.ensemble * cfg.epochs * math.ceil(n / cfg.batch_size)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=steps, desc="training proxy head", unit="step")
    for k in range(cfg.ensemble):
        torch.manual_seed(cfg.seed * 1000 + k)
        rng = np.random.default_rng(cfg.seed * 1000 + k)
        net = _head_module(cfg, feats.emb.shape[1], feats.scalars.shape[1])
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=cfg.epochs * math.ceil(n / cfg.batch_size),
            pct_start=0.1)
        net.train()
        batches = (perm[i:i + cfg.batch_size] for _ in range(cfg.epochs)
                   for perm in [rng.permutation(n)] for i in range(0, n, cfg.batch_size))
        _optimise(opt, sched, batches, lambda idx: _loss(
            cfg, net(*_tensors(feats.subset(idx), cfg.scalar_mean, cfg.scalar_std)), y[idx]),
            bar)
        net.eval()
        model.heads.append(net)
    if bar is not None:
        bar.close()
    if calib is not None:
        point, _ = model._predict_features(calib_feats)
        _set_residual_quantiles(cfg, calib_target, point)
    return model


def _finetune(model, prompts: list[str], prompt_tokens: np.ndarray,
              target: np.ndarray, progress: bool = False) -> None:
    """Train the encoder (all layers, or the top `finetune_layers`) and one head end to end on
    the user text; the word-embedding table stays frozen (it is most of the parameters and
    barely moves at this learning rate). Batches are length-sorted chunks in random order.
    `model` is the `ProxyModel` (proxy.inference) being trained."""
    import torch

    cfg = model.cfg
    enc = model.encoder
    cfg.pooling = enc.pooling
    bert, _ = enc._load()
    prompts = list(prompts)
    target = np.asarray(target, np.float64)
    calib, keep = _calibration_split(cfg, len(target))
    texts = [user_text(prompts[i]) for i in keep]
    ids = enc.token_ids(texts)
    side = model._side_features([prompts[i] for i in keep], np.asarray(prompt_tokens)[keep],
                                np.zeros((len(keep), 0), np.float32))
    cfg.scalar_mean = side.scalars.mean(0).round(6).tolist()
    cfg.scalar_std = np.maximum(side.scalars.std(0), 1e-6).round(6).tolist()
    y = torch.tensor(target[keep], dtype=torch.float32)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    head = _head_module(cfg, bert.config.hidden_size, side.scalars.shape[1])
    n_layers = bert.config.num_hidden_layers
    top = cfg.finetune_layers if 0 < cfg.finetune_layers < n_layers else 0
    for p in bert.parameters():
        p.requires_grad_(not top)
    if top:
        for layer in bert.encoder.layer[n_layers - top:]:
            for p in layer.parameters():
                p.requires_grad_(True)
    bert.embeddings.word_embeddings.weight.requires_grad_(False)

    def pad(rows, fill):
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), fill, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, row in enumerate(rows):
            out[r, :len(row)] = torch.tensor(row)
            mask[r, :len(row)] = 1
        return out, mask

    order = np.argsort([len(r) for r in ids], kind="stable")
    chunks = [order[i:i + cfg.finetune_batch_size]
              for i in range(0, len(order), cfg.finetune_batch_size)]
    lower = None
    if top:     # frozen lower layers: their output is computed once
        lower = [None] * len(ids)
        bert.eval()
        with torch.inference_mode():
            for b in chunks:
                inp, mask = pad([ids[j] for j in b], 0)
                hs = bert(input_ids=inp, attention_mask=mask,
                          output_hidden_states=True).hidden_states[n_layers - top]
                for r, j in enumerate(b):
                    lower[j] = hs[r, :len(ids[j])].clone()

    def embed(b):
        inp, mask = pad([ids[j] for j in b], 0)
        if lower is None:
            h = bert(input_ids=inp, attention_mask=mask).last_hidden_state
        else:
            h = torch.zeros(len(b), inp.shape[1], bert.config.hidden_size)
            for r, j in enumerate(b):
                h[r, :len(ids[j])] = lower[j]
            add = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
            for layer in bert.encoder.layer[n_layers - top:]:
                h = layer(h, add)
        return enc.pool(h, mask)

    enc_params = [p for p in bert.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": enc_params, "lr": cfg.encoder_lr},
                             {"params": list(head.parameters()), "lr": cfg.lr}],
                            weight_decay=cfg.weight_decay)
    total = max(cfg.finetune_epochs * len(chunks), 1)
    warm = max(int(0.06 * total), 1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / total))
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total, desc="fine-tuning encoder + head", unit="step")
    bert.train()
    head.train()
    batches = (chunks[c] for _ in range(cfg.finetune_epochs)
               for c in rng.permutation(len(chunks)))
    _optimise(opt, sched, batches, lambda b: _loss(
        cfg, head(embed(b), *_tensors(side.subset(b), cfg.scalar_mean, cfg.scalar_std)[1:]),
        y[b]), bar)
    if bar is not None:
        bar.close()
    for p in bert.parameters():
        p.requires_grad_(False)
    bert.eval()
    head.eval()
    model.heads = [head]
    if calib is not None:
        point, _, _ = model.predict([prompts[i] for i in calib],
                                    np.asarray(prompt_tokens)[calib])
        _set_residual_quantiles(cfg, np.clip(target[calib], 1, None), point)



def _calibration_split(cfg: ProxyConfig, n: int) -> tuple[np.ndarray | None, np.ndarray]:
    """(held-out rows for the residual quantiles or None, the rows trained on): a regression
    head with `calibration_frac` > 0 and at least 20 rows keeps a seeded share back."""
    if cfg.head == "regression" and cfg.calibration_frac > 0 and n >= 20:
        perm = np.random.default_rng(cfg.seed).permutation(n)
        k = max(int(n * cfg.calibration_frac), 1)
        return np.sort(perm[:k]), np.sort(perm[k:])
    return None, np.arange(n)


def _set_residual_quantiles(cfg: ProxyConfig, target: np.ndarray, point: np.ndarray) -> None:
    """Quantiles of the held-out residuals, log scale."""
    r = np.log(target) - np.log(point)
    cfg.residual_quantiles = {float(q): float(np.quantile(r, q)) for q in cfg.quantiles}


def _optimise(opt, sched, batches, loss_of, bar) -> None:
    """One optimiser and scheduler step per batch (batches drawn lazily, in order)."""
    for b in batches:
        loss = loss_of(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if bar is not None:
            bar.update(1)
