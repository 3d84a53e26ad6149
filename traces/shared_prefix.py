"""`synth:shared-prefix`: system prompts shared by groups of users, each user a multi-turn
conversation, for prefix-caching experiments.

The shape follows inference-perf's shared-prefix workload (kubernetes-sigs/inference-perf,
`data: type: shared_prefix` with num_groups, num_prompts_per_group, system_prompt_len,
question_len, output_len): `groups` system prompts of `system_prompt_len` tokens; `users`
users per group; each user asks `questions` questions in one conversation, so turn t's prompt
is the system prompt, the t earlier questions and answers, and the new question:
system_prompt_len + t * (question_len + output_len) + question_len tokens. Lengths are fixed,
as in inference-perf. Conversations start as a Poisson process (`rate` requests/s over all
users); a user's next question comes `think_s` seconds after the previous one.

Prefix identity (traces/prefix.py): `prefix_group` + `prefix_tokens` (the system prompt) and
`session_id` (the conversation), so a cache can re-use the system prompt across the group's
users and each conversation's history across its turns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqsched.traces.request import Trace, TraceError


def shared_prefix(n: int, seed: int = 0, groups: int = 4, users: int = 8, questions: int = 4,
                  system_prompt_len: int = 1024, question_len: int = 128,
                  output_len: int = 256, rate: float = 4.0, think_s: float = 5.0) -> Trace:
    """n requests: `questions`-turn conversations of `users` users in each of `groups`
    groups (conversations are dealt to groups round-robin; more than groups x users
    conversations start new users)."""
    for key, value, low in (("groups", groups, 1), ("users", users, 1),
                            ("questions", questions, 1), ("question_len", question_len, 1),
                            ("output_len", output_len, 1), ("system_prompt_len",
                                                            system_prompt_len, 0)):
        if int(value) != value or value < low:
            raise TraceError(f"shared-prefix: {key} must be a whole number >= {low}, "
                             f"got {value!r}")
    if not rate > 0 or not think_s >= 0:
        raise TraceError(f"shared-prefix: rate must be > 0 and think_s >= 0, got rate={rate!r} "
                         f"think_s={think_s!r}")
    rng = np.random.default_rng(seed)
    sessions = -(-n // questions)
    starts = np.cumsum(rng.exponential(questions / rate, sessions))
    session = np.arange(n) // questions
    turn = np.arange(n) % questions
    prompt = system_prompt_len + turn * (question_len + output_len) + question_len
    df = pd.DataFrame({
        "id": [f"sp{s}-t{t}" for s, t in zip(session.tolist(), turn.tolist())],
        "arrival_s": starts[session] + turn * think_s,
        "prompt_tokens": prompt,
        "output_tokens": np.full(n, output_len),
        "prefix_group": session % groups,
        "prefix_tokens": np.full(n, system_prompt_len),
        "session_id": session,
        "user": (session // groups) % users,
        "turn": turn,
    })
    df = df.sort_values("arrival_s", kind="stable").reset_index(drop=True)
    return Trace(df, name=f"shared-prefix-{n}-s{seed}")


INFO = {"description": "system prompts shared by groups x users x multi-turn questions "
                       "(inference-perf's shared_prefix shape): groups, users, questions, "
                       "system_prompt_len, question_len, output_len, rate, think_s",
        "source": "parameters (shape: kubernetes-sigs/inference-perf shared_prefix)"}
