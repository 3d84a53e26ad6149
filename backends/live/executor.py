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
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import numpy as np
import torch

from seqsched.backends.live.model import LoadedModel, load_model
from seqsched.sim.step import Step, StepResult
from seqsched.sim.sequence import Seq

LENGTH_MODES = ("forced", "natural")
# "wall": wall time (CUDA-synchronised), the default and the only choice on a GPU. "thread": the
# calling thread's CPU time, for single-threaded CPU runs on a shared machine (other processes'
# load does not count), i.e. the time the step would take on an otherwise idle core.
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}


class LiveExecutor:
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

    # -- padded (static) batches ---------------------------------------------------------
    def _run_padded(self, step: Step, iterations: int, stop_after_s: float | None) -> StepResult:
        seqs = step.seqs
        b = len(seqs)
        predict = step.kind == "predict"
        lengths = ([int(x) for x in step.prefill_tokens] if predict
                   else [s.prompt_tokens for s in seqs])
        width = max(lengths)
        natural = self.length_mode == "natural" and not predict
        limits = [0 if predict else self._target(s, step.cap) for s in seqs]
        if not predict:
            for s in seqs:
                self.outputs[s.id] = []
        t0 = self._clock()
        ids = torch.full((b, width), self.pad_token_id, dtype=torch.long)
        valid = torch.zeros((b, width), dtype=torch.bool)
        for r, (s, n) in enumerate(zip(seqs, lengths)):
            ids[r, width - n:] = torch.tensor(self.prompt_ids(s, n), dtype=torch.long)
            valid[r, width - n:] = True
        pos = (valid.long().cumsum(1) - 1).clamp_(min=0)
        ids, valid, pos = ids.to(self.device), valid.to(self.device), pos.to(self.device)
        cache = self._new_cache()
        done = [False] * b
        eos_at: dict[str, int] = {}
        times: list[float] = []
        emitted = 0
        tok = self._forward(ids, valid, pos, cache)
        n_run = 0
        length = pos[:, -1] + 1
        ones = torch.ones((b, 1), dtype=torch.bool, device=self.device)
        while True:
            toks = tok.tolist()                          # synchronises
            for r, s in enumerate(seqs):
                if done[r] or predict:
                    continue
                out = self.outputs[s.id]
                out.append(toks[r])
                emitted += 1
                if natural and toks[r] == self.eos_token_id:
                    eos_at[s.id] = n_run
                    done[r] = True
                elif len(out) >= limits[r] and not natural:
                    done[r] = True
                elif natural and step.cap is not None and len(out) >= step.cap:
                    done[r] = True
            self._sync()
            times.append(self._clock() - t0)
            n_run += 1
            if n_run >= iterations or (natural and all(done)):
                break
            if stop_after_s is not None and times[-1] >= stop_after_s:
                break
            feed = torch.tensor([self.pad_token_id if done[r] else toks[r] for r in range(b)],
                                dtype=torch.long, device=self.device)[:, None]
            valid = torch.cat([valid, ones], dim=1)
            tok = self._forward(feed, valid, length[:, None], cache)
            length = length + 1
        del cache
        self._sync()
        duration = self._clock() - t0
        self.iteration_s = np.diff([0.0] + times).tolist()
        self._record(step, iterations, n_run, duration, times[0], emitted, len(eos_at),
                     new_tokens=b * width, past_sum=0, width=width)
        return StepResult(duration, n_run, times[0], eos_at if natural else None)

    # -- continuous batches ---------------------------------------------------------------
    def _run_continuous(self, step: Step, iterations: int,
                        stop_after_s: float | None) -> StepResult:
        for s in step.preempt:
            self.release(s)
        seqs = step.seqs
        b = len(seqs)
        chunks = [int(c) for c in step.prefill_tokens]
        if len(chunks) != b:
            raise ValueError(f"{b} rows but {len(chunks)} prefill entries")
        natural = self.length_mode == "natural"
        t0 = self._clock()
        past, new_ids, ready = [], [], []
        for s, c in zip(seqs, chunks):
            if c > 0:
                if s.prefilled == 0:
                    self._kv.pop(s.id, None)
                    if s.generated == 0:                        # a fresh attempt
                        self.outputs[s.id] = []
                    else:                   # resumed after a recompute preemption
                        kept = self.outputs.get(s.id, [])
                        if s.recomputed != s.generated or len(kept) < s.generated:
                            raise ValueError(
                                f"request {s.id} resumes with {s.generated} output tokens "
                                f"({s.recomputed} to recompute) but the executor kept "
                                f"{len(kept)}")
                        del kept[s.generated:]
                total = s.prefill_len
                if s.prefilled + c > total:
                    raise ValueError(f"request {s.id}: chunk {c} at offset {s.prefilled} runs "
                                     f"past its prefill ({total})")
                p = s.prefilled
                new_ids.append(self.prefill_ids(s)[p:p + c])
                ready.append(p + c >= total)
            else:
                out = self.outputs.get(s.id)
                if not s.prefill_done or s.generated == 0 or not out:
                    raise ValueError(f"request {s.id} is a decode row (chunk 0) but has no "
                                     "prefilled prompt and first token in this executor")
                # cached: the prompt and every output token but the last (a resumed row's
                # recomputed output included), which is this iteration's input
                p = s.prompt_tokens + s.generated - 1
                new_ids.append([out[-1]])
                ready.append(True)
            have = self.cached_tokens(s.id)
            if have != p:
                raise ValueError(f"request {s.id}: the executor holds {have} cached tokens but "
                                 f"the step expects {p}; was release() missed?")
            past.append(p)
        big_p = max(past)
        q = max(len(x) for x in new_ids)
        ids = torch.full((b, q), self.pad_token_id, dtype=torch.long)
        valid = torch.zeros((b, big_p + q), dtype=torch.bool)
        pos = torch.zeros((b, q), dtype=torch.long)
        for r, (p, x) in enumerate(zip(past, new_ids)):
            n = len(x)
            ids[r, q - n:] = torch.tensor(x, dtype=torch.long)
            valid[r, big_p - p:big_p] = True
            valid[r, big_p + q - n:] = True
            pos[r, q - n:] = torch.arange(p, p + n)
        ids, valid, pos = ids.to(self.device), valid.to(self.device), pos.to(self.device)
        cache = self._new_cache()
        if big_p > 0:
            self._gather(cache, seqs, past, big_p, valid[:, :big_p])
        tok = self._forward(ids, valid, pos, cache)
        length = torch.tensor([p + len(x) for p, x in zip(past, new_ids)], device=self.device)
        ready_t = torch.tensor(ready, dtype=torch.bool, device=self.device)[:, None]
        times: list[float] = []
        eos_at: dict[str, int] = {}
        emitted = 0
        n_run = 0
        while True:
            toks = tok.tolist()
            stop = False
            for r, s in enumerate(seqs):
                if not ready[r]:
                    continue
                self.outputs[s.id].append(toks[r])
                emitted += 1
                if natural and toks[r] == self.eos_token_id:
                    eos_at[s.id] = n_run
                    stop = True
            self._sync()
            times.append(self._clock() - t0)
            n_run += 1
            if stop or n_run >= iterations or not any(ready):
                break
            if stop_after_s is not None and times[-1] >= stop_after_s:
                break
            feed = torch.tensor([toks[r] if ready[r] else self.pad_token_id for r in range(b)],
                                dtype=torch.long, device=self.device)[:, None]
            valid = torch.cat([valid, ready_t], dim=1)
            tok = self._forward(feed, valid, length[:, None], cache)
            length = length + ready_t[:, 0].long()
        self._scatter(cache, seqs, valid)
        del cache
        self._sync()
        duration = self._clock() - t0
        self.iteration_s = np.diff([0.0] + times).tolist()
        self._record(step, iterations, n_run, duration, times[0], emitted, len(eos_at),
                     new_tokens=sum(chunks), past_sum=sum(past), width=big_p + q)
        return StepResult(duration, n_run, times[0], eos_at if natural else None)

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
