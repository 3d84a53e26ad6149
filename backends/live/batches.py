"""The live executor's step loops: a padded (static) batch and a continuous batch, each a
hand-written greedy loop over `model(...)` (see the module docstring of backends.live.executor).
A mixin of `LiveExecutor`, on top of `KVCacheMixin` (backends.live.kv_cache) for the mask,
forward pass and per-request KV caches."""

from __future__ import annotations

import numpy as np
import torch

from seqsched.backends.live.kv_cache import KVCacheMixin
from seqsched.sim.step import Step, StepResult


class BatchStepsMixin(KVCacheMixin):
    """`_run_padded` and `_run_continuous` for `LiveExecutor`."""

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
