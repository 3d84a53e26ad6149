"""`seqsched calibrate`: measure a live model on a grid of batch shapes, fit the profile cost
model, write the profile JSON (metadata, raw points, coefficients, fit errors)."""

from __future__ import annotations

import sys
import time
from pathlib import Path


from seqsched.common.errors import UserError
from seqsched.app.live_common import LOAD_HINT, _is_oom, _oom_error, _setup_torch


def run_calibrate(model: str = "tiny", device: str = "cpu", dtype: str = "float32",
                  out: str | Path = "profile.json", grid: str | None = None, *,
                  attn: str = "eager", seed: int = 0, repeats: int | None = None,
                  warmup: int | None = None, decode_iterations: int | None = None,
                  name: str | None = None, progress: bool = False,
                  clock: str = "wall") -> dict:
    """Calibrate and write the profile; returns the profile dict."""
    import dataclasses

    from seqsched.backends.calibration import GRIDS, calibrate
    from seqsched.backends.live.executor import LiveExecutor
    from seqsched.backends.profile import save_profile

    grid_name = grid or ("gpu" if str(device).startswith("cuda") else "cpu")
    if grid_name not in GRIDS:
        raise UserError(f"unknown calibration grid {grid_name!r}; choose one of "
                        f"{', '.join(GRIDS)}")
    g = GRIDS[grid_name]
    changes = {k: v for k, v in (("repeats", repeats), ("warmup", warmup),
                                 ("decode_iterations", decode_iterations)) if v is not None}
    for k, v in changes.items():
        if v < (0 if k == "warmup" else 1):
            raise UserError(f"--{k.replace('_', '-')} must be >= {0 if k == 'warmup' else 1}")
    g = dataclasses.replace(g, **changes)
    try:
        ex = LiveExecutor(model, device=device, dtype=dtype, attn_implementation=attn, seed=seed,
                          clock=clock)
    except RuntimeError as e:
        if not _is_oom(e):
            raise
        raise _oom_error(e, f"loading {model}", device, LOAD_HINT) from None
    profile = calibrate(ex, g, progress=progress, name=name)
    profile["settings"]["grid"] = grid_name
    save_profile(profile, out)
    return profile


def profile_table(profile: dict) -> str:
    from tabulate import tabulate

    rows = []
    for part in ("prefill", "decode", "step"):
        if part not in profile:
            continue
        sec = profile[part]
        fit = sec["fit"]
        coef = ", ".join(f"{n}={c:.3g}" for n, c in zip(sec["features"], sec["coef"]))
        rows.append([part, fit["n"], f"{100 * fit['mean_rel_err']:.1f}%",
                     f"{100 * fit['max_rel_err']:.1f}%", _knots(sec), coef])
    return tabulate(rows, headers=["part", "points", "mean rel err", "max rel err", "knot(s)",
                                   "coefficients (s)"])


def _knots(sec: dict) -> str:
    """The ridge knot(s) of a fitted part: token slots / rows, and attention entries."""
    knot = f"{sec.get('knot', 0):g}"
    return knot if sec.get("attn_knot") is None else f"{knot} / {sec['attn_knot']:.3g}"


def cmd_calibrate(args) -> int:
    from seqsched.analysis.output import check_output_file
    check_output_file(args.out)          # before minutes of measuring
    dtype = _setup_torch(args)
    t0 = time.perf_counter()
    profile = run_calibrate(args.model, args.device, dtype, args.out, args.grid,
                            attn=args.attn, seed=args.seed, repeats=args.repeats,
                            warmup=args.warmup, decode_iterations=args.decode_iterations,
                            name=args.name, progress=not args.no_progress and sys.stderr.isatty(),
                            clock=args.clock)
    dev = profile["device"]
    print(f"calibrated {profile['model']['name']} ({profile['dtype']}, "
          f"{profile['attn_implementation']}, {profile['clock']} clock) "
          f"on {dev['type']} {dev['name']} in {time.perf_counter() - t0:.1f} s")
    print(profile_table(profile))
    print(f"wrote {args.out}")
    return 0


# -- validate --------------------------------------------------------------------------------
