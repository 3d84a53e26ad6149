"""Proxy inference: `ProxyModel` (features -> ensemble of heads -> predictions; save / load of
a model folder) and `ProxyPredictor`, the `--predictor proxy --param model=DIR` predictor.

torch / transformers / safetensors are imported lazily."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError
from seqsched.common.params import is_whole
from seqsched.predictors.base import PredictorCost
from seqsched.predictors.proxy.features import (Features, TextEncoder, Vocabulary,
                                                encode_cached, ngrams, scalar_features,
                                                split_prompt, trace_prompts, user_text)
from seqsched.predictors.proxy.model import (FORMAT, ProxyConfig, _decode, _emb_dim,
                                             _head_module, _tensors)
from seqsched.predictors.proxy.cost import (XEON_8380_CORE_GBS, XEON_8380_CORE_GFLOPS,
                                            Placement, encoder_tokens, proxy_shape)
from seqsched.predictors.proxy.threads import DEFAULT_THREADS, torch_threads
from seqsched.predictors.proxy.training import train_model
from seqsched.traces.request import Trace


class ProxyModel:
    """Features + an ensemble of trained heads. Build with `train` or `load`."""

    def __init__(self, cfg: ProxyConfig, heads: list | None = None,
                 encoder_path: str | Path | None = None):
        cfg.validate()
        self.cfg = cfg
        self.heads = heads or []
        # a fine-tuned encoder's head was trained on raw (not L2-normalised) mean pooling
        self.encoder = TextEncoder(str(encoder_path) if encoder_path else cfg.encoder,
                                   max_length=cfg.max_length, pooling=cfg.pooling,
                                   normalize=not cfg.finetune_encoder)
        self._vocab = Vocabulary(cfg.vocab, cfg.idf)

    # features
    def features(self, prompts: list[str], prompt_tokens: np.ndarray, progress: bool = False,
                 use_cache: bool = True) -> tuple[Features, np.ndarray | None]:
        """(features, measured encoder seconds per prompt, or None when the cache served)."""
        texts = [user_text(p) for p in prompts]
        secs = None
        if use_cache:
            emb = encode_cached(self.encoder, texts, progress=progress)
        else:
            emb, secs = self.encoder.encode(texts, progress=progress)
        t0 = time.perf_counter()
        feats = self._side_features(prompts, prompt_tokens, emb)
        if secs is not None:
            secs = secs + (time.perf_counter() - t0) / max(len(prompts), 1)
        return feats, secs

    def _side_features(self, prompts: list[str], prompt_tokens: np.ndarray,
                       emb: np.ndarray) -> Features:
        bags = self._vocab.bags([ngrams(split_prompt(p)[0]) for p in prompts])
        return Features(emb, scalar_features(prompts, prompt_tokens), *bags)

    # training
    @classmethod
    def train(cls, prompts: list[str], prompt_tokens: np.ndarray, target: np.ndarray,
              cfg: ProxyConfig | None = None, progress: bool = False,
              use_cache: bool = True, finetune_encoder: bool | None = None,
              epochs: int | None = None, max_length: int | None = None,
              threads: int | None = DEFAULT_THREADS) -> "ProxyModel":
        """Train the head(s) on frozen embeddings, or (`finetune_encoder`) the encoder and one
        head end to end; `epochs` / `max_length` override the config's (fine-tuning epochs when
        fine-tuning); `threads` torch threads (`proxy.threads`). See `proxy.training`."""
        with torch_threads(threads):
            return train_model(cls, prompts, prompt_tokens, target, cfg, progress=progress,
                               use_cache=use_cache, finetune_encoder=finetune_encoder,
                               epochs=epochs, max_length=max_length)

    # inference
    def _predict_features(self, feats: Features) -> tuple[np.ndarray, dict]:
        import torch

        if not self.heads:
            raise UserError("the proxy model has no trained head; train it or load a folder")
        x = _tensors(feats, self.cfg.scalar_mean, self.cfg.scalar_std)
        with torch.inference_mode():
            outs = [h(*x).numpy() for h in self.heads]
        point, quant = _decode(self.cfg, outs)
        clip = (1, self.cfg.max_tokens)
        return np.clip(point, *clip), {q: np.clip(v, *clip) for q, v in quant.items()}

    def predict(self, prompts: list[str], prompt_tokens: np.ndarray, progress: bool = False,
                use_cache: bool = False) -> tuple[np.ndarray, dict, np.ndarray]:
        """(point predictions int64, {q: int64 values}, seconds per prompt)."""
        t0 = time.perf_counter()
        feats, secs = self.features(prompts, prompt_tokens, progress=progress,
                                    use_cache=use_cache)
        t1 = time.perf_counter()
        point, quant = self._predict_features(feats)
        head_s = (time.perf_counter() - t1) / max(len(prompts), 1)
        if secs is None:      # served from the cache: charge the average measured so far
            secs = np.full(len(prompts), (t1 - t0) / max(len(prompts), 1))
        to_int = (lambda v: np.maximum(np.rint(v), 1).astype(np.int64))
        return to_int(point), {q: to_int(v) for q, v in quant.items()}, secs + head_s

    # persistence
    def save(self, out_dir: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {}
        for k, h in enumerate(self.heads):
            for name, t in h.state_dict().items():
                tensors[f"{k}.{name}"] = t.contiguous()
        save_file(tensors, str(out / "head.safetensors"))
        if self.cfg.finetune_encoder:
            self.encoder.save(out / "encoder")
            self.cfg.finetuned_encoder = "encoder"
        cfg = asdict(self.cfg)
        cfg["quantiles"] = list(self.cfg.quantiles)
        cfg["residual_quantiles"] = {str(q): v for q, v in self.cfg.residual_quantiles.items()}
        cfg["encoder"] = self.cfg.encoder
        (out / "config.json").write_text(json.dumps({"format": FORMAT, "version": 1, **cfg},
                                                    indent=1))
        return out

    @classmethod
    def load(cls, model_dir: str | Path) -> "ProxyModel":
        model_dir = Path(model_dir)
        cfg_path = model_dir / "config.json"
        if not cfg_path.is_file() or not (model_dir / "head.safetensors").is_file():
            raise UserError(f"{model_dir}: not a proxy model folder (needs config.json and "
                            "head.safetensors); train one with `seqsched predict train "
                            "--predictor proxy --out DIR`")
        raw = json.loads(cfg_path.read_text())
        if raw.get("format") != FORMAT:
            raise UserError(f"{model_dir}: config.json is not a seqsched proxy model "
                            f"(format {raw.get('format')!r})")
        raw.pop("format")
        raw.pop("version", None)
        raw["quantiles"] = tuple(raw.get("quantiles", (0.5, 0.9)))
        raw["within"] = tuple(raw.get("within", (50, 100)))
        raw["residual_quantiles"] = {float(q): v
                                     for q, v in raw.get("residual_quantiles", {}).items()}
        known = {f for f in ProxyConfig.__dataclass_fields__}
        cfg = ProxyConfig(**{k: v for k, v in raw.items() if k in known})
        from safetensors.torch import load_file

        tensors = load_file(str(model_dir / "head.safetensors"))
        tuned = None
        if cfg.finetuned_encoder:
            tuned = model_dir / cfg.finetuned_encoder
            if not (tuned / "config.json").is_file():
                raise UserError(f"{model_dir}: the fine-tuned encoder folder {tuned} is missing")
        model = cls(cfg, encoder_path=tuned)
        for k in range(cfg.ensemble):
            net = _head_module(cfg, _emb_dim(tensors, k, len(cfg.scalar_mean)),
                               len(cfg.scalar_mean))
            net.load_state_dict({n[len(f"{k}."):]: t for n, t in tensors.items()
                                 if n.startswith(f"{k}.")})
            net.eval()
            model.heads.append(net)
        return model



# -- the predictor -------------------------------------------------------------------------
class ProxyPredictor:
    """`--predictor proxy --param model=DIR`: a trained proxy model folder.

    Its cost is modelled, never timed here (`proxy.cost`): `on` gpu (default: the served GPU,
    sharing its timeline), cpu (host cores beside it) or free; the encoder's shape from its
    config.json and each prompt's encoder tokens give a roofline time per batch of
    `batch_size`. `threads` is the torch thread count of the inference on this machine
    (default 1, `proxy.threads`; 0 keeps torch's); `wall_s` / `threads_used` record how long
    the last inference took, for reporting speed only."""

    name = "proxy"

    def __init__(self, model: str | None = None, progress: bool = False,
                 threads: int | None = DEFAULT_THREADS, on: str = "gpu", batch_size: int = 128,
                 overhead_s: float = 0.0, cpu_gflops: float = XEON_8380_CORE_GFLOPS,
                 cpu_gbs: float = XEON_8380_CORE_GBS, cpu_cores: int = 1):
        if not model:
            raise UserError("predictor proxy needs a trained model folder: --predictor-param "
                            "model=DIR (train one with `seqsched predict train --predictor "
                            "proxy`)")
        if threads is not None and (not is_whole(threads) or threads < 0):
            raise ValueError(f"threads must be a whole number >= 0, got {threads!r}")
        self.placement = Placement(on, batch_size, overhead_s, cpu_gflops, cpu_gbs, cpu_cores)
        self.model_dir = model
        self.progress = progress
        self.threads = threads
        self._model = ProxyModel.load(model)
        self._memo: tuple | None = None
        self.wall_s = 0.0
        self.threads_used = 0

    def _run(self, trace: Trace):
        key = (len(trace), hashlib.sha1("\x00".join(trace.ids.tolist()).encode()).hexdigest())
        if self._memo is None or self._memo[0] != key:
            prompts = trace_prompts(trace)
            self._model.encoder._load()        # the one-time load is not inference speed
            with torch_threads(self.threads) as n:
                t0 = time.perf_counter()
                res = self._model.predict(prompts, trace.prompt_tokens, progress=self.progress)
                self.wall_s, self.threads_used = time.perf_counter() - t0, n
            self._memo = (key, res, encoder_tokens(self._model, prompts))
        return self._memo

    def predict(self, trace: Trace) -> np.ndarray:
        return self._run(trace)[1][0]

    def predict_quantiles(self, trace: Trace) -> dict[float, np.ndarray]:
        return self._run(trace)[1][1]

    def run_live(self, executor, seqs) -> tuple[list[int], int, int]:
        """A live predict step (backends/live: the executor times this call, the one place a
        measured time is charged): the proxy runs now on these requests' prompts, no memo and
        no embedding cache. Returns (predictions, 1 forward pass, widest prompt)."""
        prompts = [s.prompt or "" for s in seqs]
        tokens = np.fromiter((s.prompt_tokens for s in seqs), np.int64, len(seqs))
        with torch_threads(self.threads):
            point, _, _ = self._model.predict(prompts, tokens, use_cache=False)
        return point.tolist(), 1, int(tokens.max())

    def cost(self, trace: Trace) -> PredictorCost:
        if self.placement.on == "free":
            return PredictorCost(on="free")
        return self.placement.cost(proxy_shape(self._model), self._run(trace)[2])
