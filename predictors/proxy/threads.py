"""The torch thread count of the proxy's inference and training, set on purpose.

torch's default (one thread per core) loses under contention: on the project's 2-core machine,
shared with other work, the encoder ran 200 prompts in 20 s with 2 threads and in 8.5 s with
one (issue #16). One thread is the default; `threads=N` overrides it, 0 keeps torch's own.
The previous count is restored afterwards, so a caller's setting is left as it was."""

from __future__ import annotations

from contextlib import contextmanager

DEFAULT_THREADS = 1


@contextmanager
def torch_threads(n: int | None = DEFAULT_THREADS):
    """Run the block with `n` torch threads (0 / None: torch's current count); yields the
    count in effect."""
    import torch

    old = torch.get_num_threads()
    if not n:
        yield old
        return
    torch.set_num_threads(int(n))
    try:
        yield int(n)
    finally:
        torch.set_num_threads(old)
