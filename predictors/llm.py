"""LLM self-perception of response length (Zheng et al. 2023), on any local Hugging Face
LLaMA-family causal LM (transformers + peft, CPU or GPU).

- *Perception in advance* (`mode="perception"`): the user turn gets an extra instruction asking
  the model to state the length of its response before answering; the first number of the
  first `max_new_tokens` generated tokens is the prediction.
- *Instruction-tuned* (`mode="lora"`): the paper's tuning set pairs each prompt + the length
  query ("... predict the number of tokens in your response ... output one number") with the
  target = max over sampled lengths rounded up to a multiple of 50. `lora_tune` trains a LoRA
  adapter on the q/v projections with peft; at inference the adapter is switched on only for
  the length query (`with model.disable_adapter()` serves normal generation with the base
  weights untouched).

Answers are parsed robustly: an answer without a number falls back to `default` and is counted
in `predictor.fallbacks`, never raising. The cost charged to the timeline is the paper's: every
request's prompt + query tokens prefilled on the served model and `max_new_tokens` decoded, in
batches of 128.

torch / transformers / peft are imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqsched.predictors.base import PredictorCost
from seqsched.common.errors import UserError
from seqsched.traces.request import Trace

FORMAT = "seqsched-llm-lora"
LENGTH_QUERY = ("\nDon't output the response for the above instruction. Instead, you need to "
                "predict the number of tokens in your response. Output one number only.")
PERCEPTION_QUERY = ("\nBefore responding to the above instruction, you have to predict the "
                    "length of your response. Print the estimated number of tokens in your "
                    "response in the first line. Then change to a new line to respond to the "
                    "instruction.")
_NUMBER = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_ASSISTANT = re.compile(r"(\s*ASSISTANT:\s*)$")


def parse_length(text: str, max_tokens: int | None = None) -> int | None:
    """The first whole number in `text` ("about 1,200 tokens" -> 1200), clipped to
    [1, max_tokens]; None when there is no number."""
    m = _NUMBER.search(text or "")
    if not m:
        return None
    value = int(m.group(1).replace(",", ""))
    value = max(value, 1)
    return min(value, max_tokens) if max_tokens else value


def with_query(prompt: str, query: str) -> str:
    """Insert the length query at the end of the user turn: before a trailing Vicuna
    `ASSISTANT:` marker when there is one, else at the end of the prompt."""
    m = _ASSISTANT.search(prompt)
    if m:
        return prompt[:m.start()] + query + m.group(1)
    return prompt + query


def _prompts(trace: Trace) -> list[str]:
    if "prompt" not in trace.df.columns:
        raise UserError(f"{trace.name}: LLM length predictors need prompt text (a 'prompt' "
                        "column); use a trace with prompts or another predictor")
    return trace.df["prompt"].fillna("").astype(str).tolist()


def build_tuning_set(trace: Trace, query: str = LENGTH_QUERY, target: str = "max-over-samples",
                     round_to: int = 50) -> list[dict]:
    """The paper's instruction-tuning set: {"prompt": prompt with the length query,
    "answer": "<target rounded up to round_to>", "id": ...}."""
    from seqsched.predictors.metrics import round_up, target_lengths

    y = target_lengths(trace, target)
    if round_to > 0:
        y = round_up(y, round_to)
    return [{"id": i, "prompt": with_query(p, query), "answer": str(int(v))}
            for i, p, v in zip(trace.ids.tolist(), _prompts(trace), y)]


def load_causal_lm(path: str | Path, dtype: str = "float32", device: str = "cpu"):
    """(model, tokenizer) from a local folder, in `dtype` on `device`; pads on the left for
    batched generation. A 7B model wants `dtype="float16", device="cuda"`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from seqsched.predictors._quiet import quiet_transformers

    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a Hugging Face model folder (no config.json); give the "
                        "path of a local LLaMA-family causal LM")
    import torch

    if not isinstance(getattr(torch, str(dtype), None), torch.dtype):
        raise UserError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for but torch sees no CUDA GPU; use "
                        "device=cpu or install a CUDA build of torch (TORCH_SPEC)")
    with quiet_transformers():
        tok = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype))
    _prepare_tokenizer(tok)
    model.to(device)
    model.eval()
    return model, tok


def _prepare_tokenizer(tok) -> None:
    if tok.pad_token is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    tok.padding_side = "left"


def parse_answers(answers: list[str], default: int,
                  max_tokens: int | None = None) -> tuple[np.ndarray, int]:
    """(lengths, fallbacks): each answer's `parse_length`, `default` where it has no number,
    and how many answers fell back."""
    values = [parse_length(a, max_tokens) for a in answers]
    lengths = np.asarray([default if v is None else v for v in values], np.int64)
    return lengths, sum(v is None for v in values)


# -- LoRA tuning ---------------------------------------------------------------------------
@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list = field(default_factory=lambda: ["q_proj", "v_proj"])
    lr: float = 2e-4
    steps: int = 1000
    batch_size: int = 8
    max_length: int = 512
    seed: int = 0
    dtype: str = "float32"               # float16 / bfloat16 with device="cuda" at 7B scale
    device: str = "cpu"


def lora_tune(base: str | Path, examples: list[dict], out_dir: str | Path,
              settings: LoraSettings | None = None, query: str = LENGTH_QUERY,
              progress: bool = False, round_to: int = 50, max_new_tokens: int = 8) -> dict:
    """LoRA-tune `base` on (prompt, answer) examples; saves the adapter and a config.json to
    `out_dir`. Returns the training report (losses)."""
    import torch
    from peft import LoraConfig, get_peft_model

    s = settings or LoraSettings()
    if not examples:
        raise UserError("the tuning set is empty; give a trace with prompts and sampled lengths")
    model, tok = load_causal_lm(base, s.dtype, s.device)
    torch.manual_seed(s.seed)
    lcfg = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout,
                      target_modules=list(s.target_modules), task_type="CAUSAL_LM")
    model = get_peft_model(model, lcfg)
    eos = tok.eos_token or ""
    rows = []
    for ex in examples:
        p = tok(ex["prompt"], add_special_tokens=True)["input_ids"]
        a = tok(ex["answer"] + eos, add_special_tokens=False)["input_ids"]
        p = p[-max(s.max_length - len(a), 1):]
        rows.append((p + a, [-100] * len(p) + a))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=s.lr)
    rng = np.random.default_rng(s.seed)
    pad = tok.pad_token_id
    losses = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=s.steps, desc="LoRA tuning", unit="step")
    model.train()
    order = rng.permutation(len(rows))
    pos = 0
    for step in range(s.steps):
        if pos + s.batch_size > len(order):
            order, pos = rng.permutation(len(rows)), 0
        batch = [rows[i] for i in order[pos:pos + s.batch_size]]
        pos += s.batch_size
        width = max(len(b[0]) for b in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for j, (x, y) in enumerate(batch):       # right padding for training
            ids[j, :len(x)] = torch.tensor(x)
            labels[j, :len(y)] = torch.tensor(y)
            mask[j, :len(x)] = 1
        loss = model(input_ids=ids.to(s.device), attention_mask=mask.to(s.device),
                     labels=labels.to(s.device)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
    if bar is not None:
        bar.close()
    model.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out / "adapter"))
    report = {"steps": s.steps, "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:])),
              "examples": len(examples)}
    cfg = {"format": FORMAT, "version": 1, "base_model": str(Path(base).resolve()),
           "query": query, "round_to": round_to, "max_new_tokens": max_new_tokens,
           "lora": {k: getattr(s, k) for k in s.__dataclass_fields__}, "report": report}
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    return report


def read_lora_folder(path: str | Path) -> dict:
    path = Path(path)
    cfg_path = path / "config.json"
    if not cfg_path.is_file() or not (path / "adapter").is_dir():
        raise UserError(f"{path}: not a LoRA length-predictor folder (needs config.json and "
                        "adapter/); train one with `seqsched predict train --predictor llm-lora`")
    cfg = json.loads(cfg_path.read_text())
    if cfg.get("format") != FORMAT:
        raise UserError(f"{path}: config.json is not a seqsched LoRA length predictor")
    return cfg


# -- the predictors ------------------------------------------------------------------------
@dataclass
class QuerySettings:
    """What an LLM length query asks and how its answer is read: shared by the offline
    predictor below and the one run live on the served model (backends/live/predictor.py)."""

    mode: str                 # "perception" (prompted) or "lora" (adapter on for the query)
    name: str
    query: str
    max_new_tokens: int
    default: int              # the length used when an answer has no number
    max_tokens: int
    batch_size: int           # the batch the simulator charges (paper: 128)
    lora: dict                # the adapter folder's config.json ({} for perception)


def query_settings(mode: str | None = None, adapter: str | None = None,
                   query: str | None = None, max_new_tokens: int | None = None,
                   default: int = 512, max_tokens: int = 512, batch_size: int = 128,
                   name: str | None = None) -> QuerySettings:
    mode = mode or ("lora" if adapter else "perception")
    if mode not in ("perception", "lora"):
        raise UserError(f"unknown LLM predictor mode {mode!r}; use perception or lora")
    name = name or ("llm-lora" if mode == "lora" else "llm-perception")
    cfg: dict = {}
    if mode == "lora":
        if not adapter:
            raise UserError("predictor llm-lora needs the parameter adapter=DIR (a folder from "
                            "`seqsched predict train --predictor llm-lora`)")
        cfg = read_lora_folder(adapter)
    q = QuerySettings(mode=mode, name=name,
                      query=query or cfg.get("query") or (
                          LENGTH_QUERY if mode == "lora" else PERCEPTION_QUERY),
                      max_new_tokens=int(max_new_tokens or cfg.get("max_new_tokens", 8)),
                      default=int(default), max_tokens=int(max_tokens),
                      batch_size=int(batch_size), lora=cfg)
    if q.max_new_tokens < 1 or q.batch_size < 1:
        raise UserError(f"predictor {name}: max_new_tokens and batch_size must be >= 1")
    return q


class LLMLengthPredictor:
    """Self-perception length predictor.

    `model`: base causal-LM folder (for `mode="lora"` it defaults to the adapter folder's base);
    `adapter`: a folder written by `lora_tune` (implies `mode="lora"`); `default`: the length
    used when an answer has no number (counted in `fallbacks`); `infer_batch`: rows per actual
    generate() call; `batch_size`: the batch the simulator charges (paper: 128)."""

    def __init__(self, model: str | None = None, adapter: str | None = None,
                 mode: str | None = None, query: str | None = None,
                 max_new_tokens: int | None = None,
                 default: int = 512, max_tokens: int = 512, batch_size: int = 128,
                 infer_batch: int = 16, progress: bool = False, name: str | None = None,
                 dtype: str = "float32", device: str = "cpu"):
        q = query_settings(mode, adapter, query, max_new_tokens, default, max_tokens,
                           batch_size, name)
        model = model or q.lora.get("base_model")
        if not model:
            raise UserError("predictor llm-perception needs --predictor-param model=DIR (a local "
                            "LLaMA-family Hugging Face model folder)")
        self.model_path = model
        self.mode, self.name, self.adapter_path, self.query = q.mode, q.name, adapter, q.query
        self.max_new_tokens, self.default = q.max_new_tokens, q.default
        self.max_tokens, self.batch_size = q.max_tokens, q.batch_size
        self.infer_batch = int(infer_batch)
        self.progress = progress
        self.dtype, self.device = str(dtype), str(device)
        self.fallbacks = 0
        self.answers: list[str] = []
        self._model = None
        self._tok = None
        self._memo = None

    # loading
    def load(self):
        if self._model is None:
            model, tok = load_causal_lm(self.model_path, self.dtype, self.device)
            if self.mode == "lora":
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(Path(self.adapter_path) / "adapter"))
                model.eval()
            self._model, self._tok = model, tok
        return self._model, self._tok

    def adapter_context(self, enabled: bool):
        """A context in which the LoRA adapter is on (length query) or off (serving)."""
        import contextlib

        model, _ = self.load()
        if self.mode != "lora" or enabled:
            return contextlib.nullcontext()
        return model.disable_adapter()

    def logits(self, texts: list[str], adapter: bool = True):
        """Last-position logits for `texts` with the adapter on or off (for checks)."""
        import torch

        model, tok = self.load()
        b = tok(texts, return_tensors="pt", padding=True).to(self.device)
        with torch.inference_mode(), self.adapter_context(adapter):
            return model(**b).logits[:, -1].float().cpu()

    def generate(self, texts: list[str], adapter: bool = True) -> list[str]:
        import torch

        model, tok = self.load()
        out = []
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=len(texts), desc=f"{self.name} length query", unit="prompt")
        order = np.argsort([len(t) for t in texts], kind="stable")
        answers = [""] * len(texts)
        for i in range(0, len(texts), self.infer_batch):
            idx = order[i:i + self.infer_batch]
            b = tok([texts[j] for j in idx], return_tensors="pt", padding=True).to(self.device)
            with torch.inference_mode(), self.adapter_context(adapter):
                gen = model.generate(**b, max_new_tokens=self.max_new_tokens, do_sample=False,
                                     pad_token_id=tok.pad_token_id)
            new = gen[:, b["input_ids"].shape[1]:]
            for j, row in zip(idx, tok.batch_decode(new, skip_special_tokens=True)):
                answers[j] = row
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        out.extend(answers)
        return out

    # the Predictor contract
    def query_prompts(self, trace: Trace) -> list[str]:
        return [with_query(p, self.query) for p in _prompts(trace)]

    def parse(self, answers: list[str]) -> np.ndarray:
        lengths, self.fallbacks = parse_answers(answers, self.default, self.max_tokens)
        return lengths

    def predict(self, trace: Trace) -> np.ndarray:
        key = tuple(trace.ids.tolist())
        if self._memo is None or self._memo[0] != key:
            self.answers = self.generate(self.query_prompts(trace), adapter=True)
            self._memo = (key, self.parse(self.answers))
        return self._memo[1].copy()

    def query_tokens(self) -> int:
        _, tok = self.load()
        return len(tok(self.query, add_special_tokens=False)["input_ids"])

    def cost(self, trace: Trace) -> PredictorCost:
        """The served model prefills prompt + query (the trace's own prompt_tokens, counted by
        the served model's tokenizer, plus the query) and decodes max_new_tokens."""
        return PredictorCost(prompt_tokens=trace.prompt_tokens + self.query_tokens(),
                             decode_tokens=self.max_new_tokens, batch_size=self.batch_size)


def make_perception(**params) -> LLMLengthPredictor:
    return LLMLengthPredictor(mode="perception", **params)


def make_lora(**params) -> LLMLengthPredictor:
    return LLMLengthPredictor(mode="lora", **params)


__all__ = ["LENGTH_QUERY", "PERCEPTION_QUERY", "parse_length", "parse_answers", "with_query",
           "build_tuning_set", "load_causal_lm", "LoraSettings", "lora_tune", "QuerySettings",
           "query_settings", "LLMLengthPredictor"]
