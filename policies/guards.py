"""What every continuous policy shares beyond its rank: the option checks, the max-wait
promotion guard (admission order) and priority preemption (displacement).

Starvation control: `aging` (tokens/s; the static-key form of linear aging, see
`continuous.LTRPolicy`) and `max_wait_s`: a request that has waited that long since its
arrival is admitted before every other waiting request (oldest first) and, once running, is
never displaced — FastServe's STARVE_LIMIT promotion to the top queue, as a wall-clock guard.

Priority preemption (`preemptive`): each step, a waiting request that ranks strictly better
than the worst running one, and that cannot be admitted with the slots and KV blocks left,
displaces running rows worst-first until it fits (FastServe preempts running jobs for
higher-priority arrivals; a displaced row is preempted the policy's `preemption` way).
`preempt_until` = c limits it as TRAIL does (Shahout et al. 2024, "Don't Stop Me Now",
arXiv:2410.01035: preemption only early in a request's life, when it holds little memory): a
row may be displaced only while generated < c * its latest prediction.
"""

from __future__ import annotations

import math

import numpy as np

from seqsched.common.errors import UserError
from seqsched.common.params import is_number, is_whole

REPREDICT_MODES = ("conditional", "sharpen")


def _number(policy, key: str, low: float = 0.0, allow_none: bool = False) -> None:
    v = getattr(policy, key)
    if v is None and allow_none:
        return
    if not is_number(v):
        raise UserError(f"{key.replace('_', '-')} must be a number, got {v!r}")
    if not math.isfinite(v) or v < low:
        raise UserError(f"{key.replace('_', '-')} must be a number >= {low:g}"
                        + (" (tokens per second)" if key == "aging" else "") + f", got {v!r}")


def check_options(policy) -> None:
    """The shared options' values; one UserError naming the option and what it takes."""
    _number(policy, "aging")
    _number(policy, "max_wait_s")
    _number(policy, "preempt_until", allow_none=True)
    _number(policy, "repredict_s")
    for key in ("preemptive", "reserve_full_isl", "async_scheduling"):
        value = getattr(policy, key, False)
        if not isinstance(value, bool):
            raise UserError(f"{key.replace('_', '-')} must be true or false, got {value!r}")
    every = policy.repredict_every
    if every is not None and (not is_whole(every) or every <= 0):
        raise UserError(f"repredict-every must be a whole number of tokens > 0, got {every!r} "
                        "(leave it unset for no re-prediction)")
    if policy.repredict not in REPREDICT_MODES:
        raise UserError(f"unknown repredict {policy.repredict!r}; use "
                        f"{' or '.join(REPREDICT_MODES)}")


def _promoted(policy, view) -> list:
    """Waiting requests past the max-wait guard, oldest first."""
    if policy.max_wait_s <= 0:
        return []
    by_arrival = getattr(view.waiting, "by_arrival", None)
    if by_arrival is None:         # a plain sorted queue (a view built by hand): scan it
        return sorted((s for s in view.waiting if view.now - s.arrival_s >= policy.max_wait_s),
                      key=lambda s: (s.arrival_s, s.idx))
    return list(by_arrival.irange_key(max_key=(view.now - policy.max_wait_s, math.inf)))


def admission_order(policy, view):
    """Waiting requests in the order admission tries them: promoted ones first (oldest
    first), then the rest in priority order."""
    promoted = _promoted(policy, view)
    if not promoted:
        yield from view.waiting
        return
    yield from promoted
    seen = {id(s) for s in promoted}
    for s in view.waiting:
        if id(s) not in seen:
            yield s


def _displaceable(policy, view, s) -> bool:
    if policy.max_wait_s > 0 and view.now - s.arrival_s >= policy.max_wait_s:
        return False
    if policy.preempt_until is not None and s.generated >= policy.preempt_until * s.predicted:
        return False
    return True


def displace(policy, view, running: list, keep: np.ndarray,
             need: np.ndarray, free: int, dropped: dict | None = None) -> list[int]:
    """Indices of running rows to preempt so better-ranked waiting requests fit (see the
    module docstring). `free` is what is left after the kept rows' needs this step; a victim
    frees what `kv.freed_by` says (with prefix caching, not the blocks others share), counted
    after the prefix references in `dropped` (left unchanged)."""
    kv = view.kv
    counted = dict(dropped or {})
    slots = policy.max_num_seqs - int(keep.sum()) - getattr(view, "held_slots", 0)
    victims_pool = sorted((i for i in range(len(running))
                           if keep[i] and _displaceable(policy, view, running[i])),
                          key=lambda i: policy.priority(running[i]), reverse=True)
    victims: list[int] = []
    v = 0
    for w in admission_order(policy, view):
        need_w = int(kv.blocks_for(w.prefill_len - w.prefilled + 1))
        key_w = policy.priority(w)
        took = []
        trial = dict(counted)
        while ((slots < 1 or need_w > free) and v < len(victims_pool)
               and key_w < policy.priority(running[victims_pool[v]])):
            i = victims_pool[v]
            v += 1
            took.append(i)
            slots += 1
            free += kv.freed_by(running[i], trial) + int(need[i])
        if slots >= 1 and need_w <= free:
            slots -= 1
            free -= need_w
            victims += took
            counted = trial
            continue
        # it still does not fit: undo this request's displacements and stop (head-of-line)
        break
    return victims
