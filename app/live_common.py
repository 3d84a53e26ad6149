"""What `seqsched calibrate` and `seqsched validate` share: the live model's options, torch
set-up, and turning an out-of-memory error into one line."""

from __future__ import annotations

import argparse


from seqsched.common.errors import UserError


def _add_model_args(p: argparse.ArgumentParser, default_model: str | None = "tiny") -> None:
    p.add_argument("--model", default=default_model,
                   help="a model shape (backends/specs.py, random weights) or a local Hugging "
                        f"Face folder (default {default_model or 'tiny'})")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--dtype", default=None,
                   help="float16, bfloat16, float32 or float64 (default float16 on cuda, "
                        "float32 on cpu)")
    p.add_argument("--attn", default="eager", choices=["eager", "sdpa"],
                   help="attention implementation (default eager, the paper's HF stack)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="random-weight and run seed")
    p.add_argument("--clock", default="wall", choices=["wall", "thread"],
                   help="wall: wall time, CUDA-synchronised (default); thread: this thread's "
                        "CPU time, for single-threaded CPU runs on a shared machine")


def _setup_torch(args) -> str:
    import torch

    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    if args.dtype:
        return args.dtype
    return "float16" if str(args.device).startswith("cuda") else "float32"


# -- calibrate -------------------------------------------------------------------------------


def _is_oom(e: BaseException) -> bool:
    text = str(e).lower()
    return "out of memory" in text or "can't allocate memory" in text


def _oom_error(e: BaseException, what: str, device: str, hint: str | None = None) -> UserError:
    first = " ".join(str(e).split())
    first = ". ".join(first.split(". ")[:2])[:240]
    hint = hint or ("use smaller batches (--policy-param batch_size=N), cap outputs "
                    "(--max-new-tokens), fewer requests, a 2-byte --dtype or a bigger device")
    return UserError(f"{what} ran out of {device} memory ({first}); {hint}")


LOAD_HINT = "use a smaller model shape, a 2-byte --dtype (float16) or a bigger device"


SHAPE_KEYS = ("n_layers", "d_model", "n_heads", "n_kv_heads", "d_ff", "vocab_size")
