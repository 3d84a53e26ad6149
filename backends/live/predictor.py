"""The LLM length query run live on the *served* model (the paper's setup): self-perception on
the served weights, or the LoRA adapter attached to them.

`ServedLengthPredictor(executor, mode="lora", adapter=DIR)` attaches the adapter of a folder
written by `seqsched predict train --predictor llm-lora` to the LiveExecutor's own model (no
second copy of the weights). The adapter is off while the executor serves (its base weights
answer as before) and on only for the length query. The query is the one `predictors.llm`
uses (same text, same tokenizer, same greedy decoding, same parsing), so its answers equal
`LLMLengthPredictor`'s.

It is both a Predictor (`predict(trace)`, `cost(trace)`: the engine needs predictions when it
builds the run) and the executor's live predictor: every "predict" step the engine schedules
runs the query for that batch on the served model (`run_live`), its measured wall time is the
step's duration on the timeline, and the answers become the requests' predictions.

The served model must be a Hugging Face folder that ships a tokenizer: the query is text.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError
from seqsched.traces.request import Trace

SERVED_PREDICTORS = ("llm-lora", "llm-perception")


def can_serve(executor) -> bool:
    """True when the length query can run on `executor`'s model (a folder with a tokenizer)."""
    lm = getattr(executor, "lm", None)
    return lm is not None and lm.source == "folder" and lm.tokenizer is not None


class ServedLengthPredictor:
    """An LLM length predictor (`predictors.llm`) run on a LiveExecutor's served model.

    Parameters mirror `LLMLengthPredictor` (`--predictor-param KEY=VALUE`); `model`,
    `infer_batch`, `dtype` and `device` are accepted and ignored (the served model answers, in
    its own dtype and device, in batches of `batch_size`, the batch the engine charges)."""

    def __init__(self, executor, mode: str | None = None, adapter: str | None = None,
                 model: str | None = None, query: str | None = None,
                 max_new_tokens: int | None = None, default: int = 512,
                 max_tokens: int = 512, batch_size: int = 128, infer_batch: int | None = None,
                 progress: bool = False, name: str | None = None, dtype: str | None = None,
                 device: str | None = None) -> None:
        from seqsched.predictors.llm import query_settings

        q = query_settings(mode, adapter, query, max_new_tokens, default, max_tokens,
                           batch_size, name)
        self.mode, self.name = q.mode, q.name
        if not can_serve(executor):
            raise UserError(f"predictor {self.name} on the served model needs a Hugging Face "
                            "model folder with a tokenizer (--model DIR); a model shape has "
                            "random weights and no tokenizer")
        self.executor = executor
        self.tokenizer = executor.lm.tokenizer
        self.adapter_path, self.query = adapter, q.query
        self.max_new_tokens, self.default = q.max_new_tokens, q.default
        self.max_tokens, self.batch_size = q.max_tokens, q.batch_size
        self.progress = progress
        self.answers: list[str] = []
        self.fallbacks = 0
        self.live_queries = 0               # predict steps run live (timed) on the served model
        self._memo: tuple | None = None
        self._lora = None
        if self.mode == "lora":
            self._attach(Path(adapter) / "adapter")

    # -- the adapter on the served weights ---------------------------------------------------
    def _attach(self, path: Path) -> None:
        from peft import PeftModel

        from seqsched.predictors._quiet import quiet_transformers

        # one adapter per served model: a second predictor on the same executor reuses it
        held = getattr(self.executor, "_served_lora", None)
        if held is not None:
            if Path(held[0]).resolve() != path.resolve():
                raise UserError(f"the served model already carries the LoRA adapter {held[0]}; "
                                f"start a new executor to serve {path}")
            self._lora = held[1]
            return
        try:
            with quiet_transformers():
                peft_model = PeftModel.from_pretrained(self.executor.model, str(path))
        except Exception as e:  # noqa: BLE001 - peft raises many kinds on a mismatched base
            msg = " ".join(str(e).split())[:200]
            raise UserError(f"{path}: cannot attach the LoRA adapter to the served model "
                            f"{self.executor.lm.name} ({msg}); serve the adapter's base model "
                            "folder (--model DIR)") from None
        peft_model.eval()
        self._lora = peft_model.base_model          # LoraModel: layers injected in place
        self._lora.disable_adapter_layers()         # serving runs the base weights
        self.executor._served_lora = (str(path), self._lora)

    def adapter(self):
        """A context in which the adapter is on (the length query); off again afterwards."""
        if self._lora is None:
            return contextlib.nullcontext()

        @contextlib.contextmanager
        def on():
            self._lora.enable_adapter_layers()
            try:
                yield
            finally:
                self._lora.disable_adapter_layers()
        return on()

    # -- the query ----------------------------------------------------------------------------
    def texts(self, prompts: list[str | None]) -> list[str]:
        from seqsched.predictors.llm import with_query
        return [with_query(p or "", self.query) for p in prompts]

    def query_tokens(self) -> int:
        return len(self.tokenizer(self.query, add_special_tokens=False)["input_ids"])

    def generate(self, texts: list[str]) -> tuple[list[str], int, int]:
        """Greedy answers of the served model (adapter on) to `texts`, one left-padded batch
        through the executor's own forward; stops when every row emitted EOS or after
        `max_new_tokens`. Returns (answers, iterations run, prompt width)."""
        import torch

        ex = self.executor
        tok = self.tokenizer
        ids = [list(tok(t)["input_ids"]) for t in texts]
        b, width = len(ids), max(len(x) for x in ids)
        pad = tok.pad_token_id if tok.pad_token_id is not None else ex.pad_token_id
        eos = tok.eos_token_id
        batch = torch.full((b, width), pad, dtype=torch.long)
        valid = torch.zeros((b, width), dtype=torch.bool)
        for r, x in enumerate(ids):
            batch[r, width - len(x):] = torch.tensor(x, dtype=torch.long)
            valid[r, width - len(x):] = True
        pos = (valid.long().cumsum(1) - 1).clamp_(min=0)
        batch, valid, pos = batch.to(ex.device), valid.to(ex.device), pos.to(ex.device)
        length = pos[:, -1] + 1
        ones = torch.ones((b, 1), dtype=torch.bool, device=ex.device)
        out: list[list[int]] = [[] for _ in range(b)]
        done = [False] * b
        n = 0
        with torch.inference_mode(), self.adapter():
            cache = ex._new_cache()
            nxt = ex._forward(batch, valid, pos, cache)
            while True:
                toks = nxt.tolist()
                n += 1
                for r in range(b):
                    if not done[r]:
                        out[r].append(toks[r])
                        done[r] = toks[r] == eos
                if n >= self.max_new_tokens or all(done):
                    break
                feed = torch.tensor([pad if done[r] else toks[r] for r in range(b)],
                                    dtype=torch.long, device=ex.device)[:, None]
                valid = torch.cat([valid, ones], dim=1)
                nxt = ex._forward(feed, valid, length[:, None], cache)
                length = length + 1
            del cache
        return tok.batch_decode(out, skip_special_tokens=True), n, width

    def parse(self, answers: list[str]) -> np.ndarray:
        from seqsched.predictors.llm import parse_answers

        lengths, self.fallbacks = parse_answers(answers, self.default, self.max_tokens)
        return lengths

    # -- the Predictor contract -----------------------------------------------------------------
    def predict(self, trace: Trace) -> np.ndarray:
        """Predictions for the whole trace (what the engine starts from), in batches of
        `batch_size` in trace order: the batches the engine's predict steps will run."""
        key = tuple(trace.ids.tolist())
        if self._memo is None or self._memo[0] != key:
            if "prompt" not in trace.df.columns:
                raise UserError(f"{trace.name}: LLM length predictors need prompt text (a "
                                "'prompt' column); use a trace with prompts or another "
                                "predictor")
            texts = self.texts(trace.df["prompt"].fillna("").astype(str).tolist())
            answers: list[str] = []
            for i in range(0, len(texts), self.batch_size):
                answers.extend(self.generate(texts[i:i + self.batch_size])[0])
            self.answers = answers
            self._memo = (key, self.parse(answers))
        return self._memo[1].copy()

    def cost(self, trace: Trace):
        from seqsched.predictors.base import PredictorCost
        return PredictorCost(prompt_tokens=trace.prompt_tokens + self.query_tokens(),
                             decode_tokens=self.max_new_tokens, batch_size=self.batch_size)

    # -- the executor's live predict step -------------------------------------------------------
    def run_live(self, executor, seqs) -> tuple[list[int], int, int]:
        """Run the length query for `seqs` on the served model now (the executor times it).
        Returns (predictions, iterations run, prompt width)."""
        if executor is not self.executor:
            raise ValueError("a ServedLengthPredictor runs on the executor it was built for")
        from seqsched.predictors.llm import parse_answers

        answers, n, width = self.generate(self.texts([s.prompt for s in seqs]))
        self.live_queries += 1
        return parse_answers(answers, self.default, self.max_tokens)[0].tolist(), n, width


__all__ = ["ServedLengthPredictor", "SERVED_PREDICTORS", "can_serve"]
