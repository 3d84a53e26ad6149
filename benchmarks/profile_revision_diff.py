"""How far the built-in kernel profiles of one source moved between two git revisions: per
profile, the share of GEMM / decode-attention points that changed and the iteration times of
a few representative steps (decode of 1-128 rows at 1,024 tokens of context, a 512- and a
2,048-token prefill), old vs new, in one process.

    .venv/bin/python benchmarks/profile_revision_diff.py --before REV [--after REV|worktree]
        [--source vidur]

Written for the Vidur speed-of-light clamp (backends/import_vidur.py): only points measured
below the physical floor should move, so small batches (weights from L2) move and large ones
do not.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import numpy as np
from tabulate import tabulate

from seqsched.backends.kernel_profile import kernel_profile_from_dict
from seqsched.backends.profile import BUILTIN_DIR
from seqsched.common.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
REL = BUILTIN_DIR.relative_to(ROOT)
GEMMS = ("qkv_proj", "o_proj", "gate_up_proj", "down_proj")
DECODE_ROWS = (1, 8, 32, 128)
PREFILL = (512, 2048)
CONTEXT = 1024


def read(rev: str, name: str) -> dict:
    if rev == "worktree":
        return json.loads((BUILTIN_DIR / f"{name}.json").read_text(encoding="utf-8"))
    text = subprocess.run(["git", "show", f"{rev}:{REL}/{name}.json"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    return json.loads(text)


def moved_points(old: dict, new: dict) -> tuple[int, int]:
    """(changed, total) over the GEMM ops, the LM head and the decode-attention grid."""
    pairs = [(old["dense"][k]["us"], new["dense"][k]["us"]) for k in GEMMS if k in old["dense"]]
    pairs.append((old["per_sequence"]["lm_head"]["us"], new["per_sequence"]["lm_head"]["us"]))
    if old["attention"].get("kind") == "split":
        pairs.append((old["attention"]["decode"]["us"], new["attention"]["decode"]["us"]))
    a = np.concatenate([np.ravel(np.asarray(o, float)) for o, _ in pairs])
    b = np.concatenate([np.ravel(np.asarray(n, float)) for _, n in pairs])
    return int(np.count_nonzero(a != b)), int(a.size)


def steps(profile: dict) -> list[float]:
    cost = kernel_profile_from_dict(profile)
    out = [float(cost.decode_times(r, r * CONTEXT, 1)[0]) for r in DECODE_ROWS]
    return out + [float(cost.prefill_time([t], [0])) for t in PREFILL]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision of the old profiles")
    ap.add_argument("--after", default="worktree", help="git revision (default: worktree)")
    ap.add_argument("--source", default="vidur", help="profiles of this source (index.json)")
    args = ap.parse_args()
    index = json.loads((BUILTIN_DIR / "index.json").read_text(encoding="utf-8"))
    names = sorted(n for n, e in index.items() if e.get("source") == args.source)
    head = ["profile", "points moved"] + [f"decode {r} (ms, %)" for r in DECODE_ROWS] + [
        f"prefill {t} (ms, %)" for t in PREFILL]
    rows = []
    for name in names:
        old, new = read(args.before, name), read(args.after, name)
        changed, total = moved_points(old, new)
        try:
            t0 = steps(old)
        except UserError:        # an old table that did not load: the new one for both
            t0, name = steps({**old, "allreduce": new["allreduce"]}), name + " *"
        t1 = steps(new)
        rows.append([name, f"{changed}/{total}"] + [
            f"{b * 1e3:.3f} ({(b / a - 1) * 100:+.1f}%)" for a, b in zip(t0, t1)])
    print(tabulate(rows, headers=head, tablefmt="github"))
    if any(r[0].endswith(" *") for r in rows):
        print("* the old profile's all-reduce table did not load (sizes not increasing); "
              "compared with the new all-reduce table on both sides")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
