"""`LiveExecutor`: the engine's Executor backed by a real LLaMA forward pass.

The SimPy engine calls `run(step, iterations, stop_after_s)` exactly as it calls the
CostModelExecutor; here the step really runs on the model and its measured wall time
(CUDA-synchronised) is what advances the simulated clock.

Two paths, both a hand-written greedy loop over `model(...)` with an explicit 4-D additive
attention mask, per-row `position_ids` and a transformers `DynamicCache` (the HF-eager stack):

* padded (static batching, the paper's stack): every row starts fresh; a left-padded batch of
  the rows' prompts, iteration 0 = prefill (emits each row's first token), then
  `iterations - 1` decode iterations. Finished rows keep their slot (fed the pad token, as
  `generate` does) until the batch ends. Nothing is kept after the step.
* continuous: a KV cache per request (keyed by `seq.id`) survives between steps. A step
  gathers the rows' caches into one left-aligned batch (gaps masked), runs iteration 0 (each
  row's prompt chunk at offset `seq.prefilled`, or one decode token), then pure decode, and
  scatters each row's valid KV columns back. `release(seq)` frees the cache.

Preemption (`resumes_preempted = True`, vLLM's recompute, as the simulation models it): the
replica releases a victim's KV cache but the executor keeps its output token ids
(`outputs[seq.id]`); when the request is scheduled again, its prefill input is the prompt ids
followed by the `seq.recomputed` output ids it already generated (chunked as the Step says, at
their original positions), and decoding continues from there. Greedy decoding recomputes the
same keys and values (up to float rounding), so outputs match an unpreempted run. A restart
(`preemption=restart`, or a failed FCR row) begins a fresh attempt with no output.

Length control: "forced" ignores EOS (the engine decides lengths from the trace; a padded row
stops recording at `min(target, cap)` tokens); "natural" stops a row at EOS and reports it in
`StepResult.eos_at` (a continuous step ends at the first EOS since the batch changes there; a
padded step ends when every row is done).

Predict steps (the length query the engine charges before requests reach the policy): with
no `predictor`, a padded batch of the charged prompt + query lengths runs on the model for the
charged number of answer tokens and its measured time is the step's; with a `predictor`, that
predictor runs now and is timed (`backends.live.predictor.ServedLengthPredictor` runs the LLM
query on this very model, LoRA adapter on, and its answers become the requests' predictions).

Prompt tokens: a folder model with a tokenizer encodes `seq.prompt`, fitted to
`seq.prompt_tokens` (the engine's accounting unit): the last `prompt_tokens` ids are kept, or
the ids are left-filled with synthetic ones. Otherwise prompts are synthetic ids drawn from a
generator seeded by the request id (deterministic, so recomputes and `generate` see the same
prompt).

Layout: this module holds the Executor protocol, prompt ids, predict steps and the step log;
the padded / continuous step loops are in backends.live.batches, the attention mask, forward
pass and KV-cache gather / scatter in backends.live.kv_cache (mixins of `LiveExecutor`).
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import numpy as np
import torch

from seqsched.backends.live.batches import BatchStepsMixin
from seqsched.backends.live.model import LoadedModel, load_model
from seqsched.sim.step import Step, StepResult
from seqsched.sim.sequence import Seq

LENGTH_MODES = ("forced", "natural")
# "wall": wall time (CUDA-synchronised), the default and the only choice on a GPU. "thread": the
# calling thread's CPU time, for single-threaded CPU runs on a shared machine (other processes'
# load does not count), i.e. the time the step would take on an otherwise idle core.
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


class LiveExecutor(BatchStepsMixin):
    """A real model behind the Executor protocol (`name`, `run`, `release`,
    `resumes_preempted`).

    Public state for tests and reports:
      outputs[seq_id] -> generated token ids of the current/final attempt (a recompute
        preemption keeps them: the resumed attempt goes on from them);
      log -> one dict per step (kind, padded, rows, token counts, shape, times);
      iteration_s -> per-iteration seconds of the last step;
      predictions[seq_id] -> what a live predictor returned in "predict" steps;
      prediction_changes -> live answers (run_live predictors) that differ from the engine's.
    """

    # a recompute-preempted row resumes by prefilling its prompt plus its kept output
    resumes_preempted = True

    def __init__(self, model: LoadedModel | str = "tiny", *, device: str = "cpu",
                 dtype: str = "float32", length_mode: str = "forced", predictor: Any = None,
                 attn_implementation: str = "eager", seed: int = 0,
                 name: str | None = None, clock: str = "wall") -> None:
        from seqsched.common.errors import UserError
        if length_mode not in LENGTH_MODES:
            raise UserError(f"unknown length mode {length_mode!r}; choose forced or natural")
        if clock not in CLOCKS:
            raise UserError(f"unknown clock {clock!r}; choose wall or thread")
        if isinstance(model, str):
            model = load_model(model, device, dtype, attn_implementation=attn_implementation,
                               seed=seed)
        if clock == "thread" and model.device.type != "cpu":
            raise UserError("clock 'thread' (this thread's CPU time) only measures CPU runs; "
                            "use --clock wall on a GPU")
        self.clock = clock
        self._clock = CLOCKS[clock]
        self.lm = model
        self.model = model.model
        self.device = model.device
        self.dtype = model.dtype
        self.length_mode = length_mode
        self.predictor = predictor
        self.name = name or f"live:{model.name}"
        self.eos_token_id = model.eos_token_id
        self.pad_token_id = model.pad_token_id
        self.outputs: dict[str, list[int]] = {}
        self.predictions: dict[str, int] = {}
        self.prediction_changes = 0
        self.log: list[dict] = []
        self.iteration_s: list[float] = []
        # id -> per layer (K, V), each [len, kv_heads * head_dim] (views of a packed tensor)
        self._kv: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self._prompts: dict[str, list[int]] = {}
        self._min = torch.finfo(self.dtype).min
        self._cuda = self.device.type == "cuda"
        self._cache_config = self.model.config
        # transformers >= 5.2x names the cache argument `cache` (`past_key_values` deprecated,
        # removed in 5.40); older versions only know `past_key_values`
        import inspect
        params = inspect.signature(type(self.model).forward).parameters
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    # -- Executor protocol ------------------------------------------------------------
    def run(self, step: Step, iterations: int, stop_after_s: float | None) -> StepResult:
        if not step.seqs:
            raise ValueError("a step with no rows")
        iterations = max(int(iterations), 1)
        with torch.inference_mode():
            if step.kind == "predict" and self.predictor is not None:
                return self._run_predictor(step, iterations)
            if step.padded:
                return self._run_padded(step, iterations, stop_after_s)
            return self._run_continuous(step, iterations, stop_after_s)

    def release(self, seq: Seq) -> None:
        self._kv.pop(seq.id, None)

    # -- helpers ------------------------------------------------------------------------
    @property
    def cached_requests(self) -> int:
        return len(self._kv)

    def cached_tokens(self, seq_id: str) -> int:
        kv = self._kv.get(seq_id)
        return 0 if kv is None else int(kv[0][0].shape[0])

    def log_frame(self):
        import pandas as pd
        return pd.DataFrame(self.log)

    def prompt_ids(self, seq: Seq, length: int | None = None) -> list[int]:
        """The prompt token ids of `seq`, exactly `length` (default `seq.prompt_tokens`) long."""
        n = seq.prompt_tokens if length is None else int(length)
        ids = self._prompts.get(seq.id)
        if ids is None:
            ids = []
            tok = self.lm.tokenizer
            if tok is not None and seq.prompt:
                ids = list(tok(seq.prompt)["input_ids"])
            if len(ids) < seq.prompt_tokens:
                ids = self._synthetic(seq.id, seq.prompt_tokens - len(ids)) + ids
            ids = ids[len(ids) - seq.prompt_tokens:]
            self._prompts[seq.id] = ids
        if n <= len(ids):
            return ids[:n]
        return ids + self._synthetic(seq.id + "#ext", n - len(ids))

    def prefill_ids(self, seq: Seq) -> list[int]:
        """What this attempt of `seq` prefills: its prompt ids, followed (after a recompute
        preemption) by the `seq.recomputed` output ids it had generated."""
        ids = self.prompt_ids(seq)
        if seq.recomputed:
            ids = ids + self.outputs[seq.id][:seq.recomputed]
        return ids

    def _synthetic(self, key: str, n: int) -> list[int]:
        rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
        low = 3 if self.lm.vocab_size > 8 else 0
        return rng.integers(low, self.lm.vocab_size, size=n).tolist()

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize(self.device)

    def _target(self, seq: Seq, cap: int | None) -> int:
        t = getattr(seq, "target_tokens", 0) or seq.output_tokens
        return min(t, cap) if cap is not None else t

    # -- the length query with a live predictor -------------------------------------------
    def _run_predictor(self, step: Step, iterations: int) -> StepResult:
        """A predict step with a live predictor: its measured wall time is the step's duration.

        A predictor with `run_live(executor, seqs)` (backends.live.predictor: the length query
        on this executor's own model, LoRA adapter on) answers for the batch now, and its
        answers become the requests' predictions (`seq.predicted`, before the replica queues
        them for the policy); `prediction_changes` counts those that differ from what the
        engine started with. Any other predictor's `predict` is timed on the batch and its
        answers are kept in `predictions` only."""
        from seqsched.traces.request import Request, Trace

        run_live = getattr(self.predictor, "run_live", None)
        self._sync()
        t0 = self._clock()
        if run_live is not None:
            pred, ran, width = run_live(self, step.seqs)
        else:
            reqs = [Request(s.id, 0.0, s.prompt_tokens, max(s.output_tokens, 1), s.prompt)
                    for s in step.seqs]
            pred = self.predictor.predict(Trace.from_requests(reqs, name="predict-step"))
            ran, width = iterations, max(step.prefill_tokens)
        self._sync()
        duration = self._clock() - t0
        for s, p in zip(step.seqs, np.asarray(pred).tolist()):
            self.predictions[s.id] = int(p)
            if run_live is not None:
                if int(p) != s.predicted:
                    self.prediction_changes += 1
                s.predicted = int(p)
        self.iteration_s = [duration]
        self._record(step, iterations, ran, duration, duration, 0, 0,
                     new_tokens=int(sum(step.prefill_tokens)), past_sum=0, width=width)
        return StepResult(duration, ran, duration)

    def _record(self, step: Step, asked: int, ran: int, duration: float, first: float,
                emitted: int, eos: int, *, new_tokens: int, past_sum: int, width: int) -> None:
        decode_rows = sum(1 for c in step.prefill_tokens if c == 0) if not step.padded else 0
        self.log.append({
            "step": len(self.log), "kind": step.kind, "padded": step.padded,
            "rows": len(step.seqs), "prefill_tokens": new_tokens, "decode_rows": decode_rows,
            "past_tokens": past_sum, "width": width, "iterations_asked": asked,
            "iterations": ran, "duration_s": duration, "first_iteration_s": first,
            "tokens": emitted, "eos": eos,
        })

    # -- warm-up ---------------------------------------------------------------------------
    def warmup(self, rows: int = 2, prompt: int = 16, iterations: int = 4,
               repeats: int = 2) -> None:
        """Run a few throw-away padded steps (allocator, kernels, cuBLAS handles)."""
        for i in range(repeats):
            seqs = [Seq(j, f"__warmup{i}_{j}", 0.0, prompt, iterations, iterations)
                    for j in range(rows)]
            self.run(Step(seqs, [prompt] * rows, padded=True), iterations, None)
            for s in seqs:
                self.outputs.pop(s.id, None)
                self._prompts.pop(s.id, None)
        self.log.clear()


__all__ = ["LiveExecutor", "LENGTH_MODES"]
