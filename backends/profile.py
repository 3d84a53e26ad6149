"""A cost model fitted from measurements of a live model (`seqsched calibrate`), stored as a
profile JSON, and loaded back as a `CostModel` (`load_profile(path)`) for `simulate --profile`.

No torch here: the simulation path reads profiles with numpy alone.

Features are physically motivated and describe the shape the live executor really computes
(HF-style batched forward: every row of an iteration is padded to the longest query Q and the
longest cached context; see backends/live/executor.py):

prefill (one iteration, rows B = prefill rows + decode rows, Q = longest chunk):
    1                      fixed per-iteration cost (kernel launches, Python, weight reads)
    B                      per-row cost (LM head, sampling, KV gather/scatter bookkeeping)
    S = B*Q                token slots through the linear layers (compute-bound part)
    A = B*Q*(P + Q)        attention score entries (P = longest cached context)
    max(0, S - k)          the roofline ridge: below k token slots the weights' reads dominate;
    max(0, A - m)          the attention ridge: once an iteration's score matrices outgrow the
                           caches (CPU) or the fused-kernel sizes (GPU eager), each entry costs
                           more; k and m are chosen by a grid search, the rest by non-negative
                           least squares (on the CPU tiny model: mean error 15% -> 7%, max
                           59% -> 21%). Profiles written before this feature load with m = inf.
decode (one iteration of B rows whose contexts sum to C):
    1, B, C, max(0, B - k)   (fixed, per row, KV read/attention, the compute ridge at k rows)

continuous-step overhead (the live executor gathers the rows' per-request KV caches into one
padded batch and scatters them back once per continuous step; added to iteration 0 of a
continuous step, i.e. a `prefill_time` call with cached or decode rows):
    1, rows, kv_tokens     (kv_tokens = cached tokens moved = sum(past) + decode_context)
It is fitted first on one-iteration pure-decode continuous steps (their time minus the
decode model); the continuous prefill points (chunks, mixed) are fitted net of it.

The fit minimises the *relative* error (rows divided by the measured time) with non-negative
coefficients (`scipy.optimize.nnls`), so small and large steps weigh alike and the model never
predicts a negative or shrinking time as a batch grows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from seqsched.common.errors import UserError

FORMAT = "seqsched-profile"
VERSION = 1
PREFILL_FEATURES = ["1", "rows", "token_slots", "attention", "ridge(token_slots)",
                    "ridge(attention)"]
PREFILL_FEATURES_V1 = PREFILL_FEATURES[:5]      # profiles without the attention ridge
DECODE_FEATURES = ["1", "rows", "context_sum", "ridge(rows)"]
STEP_FEATURES = ["1", "rows", "kv_tokens"]


# -- features --------------------------------------------------------------------------------
def prefill_features(new_tokens, past_tokens, decode_rows: int = 0, decode_context: int = 0,
                     knot: float = 0.0, attn_knot: float = np.inf) -> np.ndarray:
    new = np.asarray(new_tokens, dtype=float).ravel()
    past = np.asarray(past_tokens, dtype=float).ravel()
    rows = len(new) + int(decode_rows)
    q = float(new.max()) if len(new) else 1.0
    q = max(q, 1.0)
    longest = float(past.max()) if len(past) else 0.0
    if decode_rows:
        # decode rows attend to decode_context/decode_rows positions on average (the cached
        # context plus the new token), so their cached part is one less
        longest = max(longest, decode_context / decode_rows - 1.0)
    slots = rows * q
    attention = slots * (longest + q)
    return np.array([1.0, rows, slots, attention, max(0.0, slots - knot),
                     max(0.0, attention - attn_knot)])


def decode_features(rows, context_sum, knot: float = 0.0) -> np.ndarray:
    """Rows of features for decode iterations; `rows`/`context_sum` scalars or arrays."""
    rows = np.asarray(rows, dtype=float)
    ctx = np.asarray(context_sum, dtype=float)
    rows, ctx = np.broadcast_arrays(rows, ctx)
    return np.stack([np.ones_like(rows), rows, ctx, np.maximum(0.0, rows - knot)], axis=-1)


def step_features(rows, kv_tokens) -> np.ndarray:
    rows = np.asarray(rows, dtype=float)
    kv = np.asarray(kv_tokens, dtype=float)
    rows, kv = np.broadcast_arrays(rows, kv)
    return np.stack([np.ones_like(rows), rows, kv], axis=-1)


def _is_continuous(past, decode_rows: int) -> bool:
    return bool(decode_rows) or bool(np.any(np.asarray(past) > 0))


def _step_point_features(p: dict) -> np.ndarray:
    rows = len(p["new"]) + int(p.get("decode_rows", 0))
    return step_features(rows, float(np.sum(p["past"])) + float(p.get("decode_context", 0)))


# -- fitting ---------------------------------------------------------------------------------
def _nnls_relative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    scale = x.max(axis=0)
    scale[scale == 0] = 1.0
    a = (x / scale) / y[:, None]
    coef, _ = nnls(a, np.ones(len(y)), maxiter=50 * x.shape[1])
    return coef / scale


def fit_quality(pred: np.ndarray, y: np.ndarray) -> dict:
    rel = np.abs(pred - y) / y
    return {"n": int(len(y)), "mean_rel_err": float(rel.mean()),
            "median_rel_err": float(np.median(rel)), "p90_rel_err": float(np.quantile(rel, 0.9)),
            "max_rel_err": float(rel.max())}


def _fit_with_knot(build, y: np.ndarray, candidates) -> tuple[float, np.ndarray, dict]:
    """Pick the knot (ridge point) with the smallest mean relative error."""
    best = None
    for k in sorted(set(float(c) for c in candidates)):
        x = build(k)
        coef = _nnls_relative(x, y)
        q = fit_quality(x @ coef, y)
        if best is None or q["mean_rel_err"] < best[2]["mean_rel_err"] - 1e-12:
            best = (k, coef, q)
    return best


def fit_prefill(points: list[dict], step_coef=None) -> dict:
    """Fit the prefill model; continuous points (cached or decode rows) net of the step
    overhead `step_coef` (STEP_FEATURES)."""
    if len(points) < len(PREFILL_FEATURES):
        raise UserError(f"{len(points)} prefill points cannot fit {len(PREFILL_FEATURES)} "
                        "coefficients; widen the calibration grid")
    y = np.array([p["seconds"] for p in points], dtype=float)
    if step_coef is not None:
        ovh = np.array([_step_point_features(p) @ np.asarray(step_coef)
                        if _is_continuous(p["past"], p.get("decode_rows", 0)) else 0.0
                        for p in points])
        y = np.maximum(y - ovh, 0.05 * y)

    raw = np.stack([prefill_features(p["new"], p["past"], p.get("decode_rows", 0),
                                     p.get("decode_context", 0)) for p in points])
    slots, attention = raw[:, 2], raw[:, 3]
    best = None
    # the attention knot: every measured value but the largest, or none (inf)
    for m in [np.inf, *np.unique(attention)[:-1]]:
        def build(k, m=m):
            x = raw.copy()
            x[:, 4] = np.maximum(0.0, slots - k)
            x[:, 5] = np.maximum(0.0, attention - m)
            return x
        knot, coef, q = _fit_with_knot(build, y, np.concatenate(([0.0], np.unique(slots)[:-1])))
        if best is None or q["mean_rel_err"] < best[3]["mean_rel_err"] - 1e-12:
            best = (knot, m, coef, q)
    knot, m, coef, q = best
    return {"features": PREFILL_FEATURES, "knot": knot,
            "attn_knot": None if not np.isfinite(m) else float(m), "coef": coef.tolist(),
            "fit": q}


def fit_decode(points: list[dict]) -> dict:
    if len(points) < len(DECODE_FEATURES):
        raise UserError(f"{len(points)} decode points cannot fit {len(DECODE_FEATURES)} "
                        "coefficients; widen the calibration grid")
    y = np.array([p["seconds"] for p in points], dtype=float)
    rows = np.array([p["rows"] for p in points], dtype=float)
    ctx = np.array([p["context_sum"] for p in points], dtype=float)
    knot, coef, q = _fit_with_knot(lambda k: decode_features(rows, ctx, k), y,
                                   np.concatenate(([0.0], np.unique(rows)[:-1])))
    return {"features": DECODE_FEATURES, "knot": knot, "coef": coef.tolist(), "fit": q}


def fit_step(points: list[dict], decode: dict) -> dict:
    """Continuous-step overhead from one-iteration pure-decode continuous steps: measured time
    minus the decode model, non-negative least squares on the relative error."""
    y = np.array([p["seconds"] for p in points], dtype=float)
    if len(points) < len(STEP_FEATURES):
        raise UserError(f"{len(points)} continuous-step points cannot fit "
                        f"{len(STEP_FEATURES)} coefficients; widen the calibration grid")
    rows = np.array([p["decode_rows"] for p in points], dtype=float)
    ctx = np.array([p["decode_context"] for p in points], dtype=float)
    base = decode_features(rows, ctx, decode["knot"]) @ np.asarray(decode["coef"])
    x = step_features(rows, ctx)
    from scipy.optimize import nnls

    scale = x.max(axis=0)
    scale[scale == 0] = 1.0
    coef, _ = nnls((x / scale) / y[:, None], (y - base) / y, maxiter=50 * x.shape[1])
    coef = coef / scale
    return {"features": STEP_FEATURES, "coef": coef.tolist(),
            "fit": fit_quality(base + x @ coef, y)}


# -- the cost model --------------------------------------------------------------------------
@dataclass
class ProfileCostModel:
    """The CostModel of a profile: `prefill_time` and vectorised `decode_times`."""

    prefill_coef: np.ndarray
    prefill_knot: float
    decode_coef: np.ndarray
    decode_knot: float
    name: str = "profile"
    prefill_attn_knot: float = np.inf
    meta: dict = field(default_factory=dict)
    # the live executor that measured the profile pads a continuous batch to its longest
    # context, so every row of a decode iteration costs as much as the longest one
    pads_to_longest: bool = True
    step_coef: np.ndarray = field(default_factory=lambda: np.zeros(len(STEP_FEATURES)))

    def step_overhead(self, rows: int, kv_tokens: float) -> float:
        """Per continuous step: gathering and scattering the rows' KV caches."""
        return float(step_features(rows, kv_tokens) @ self.step_coef)

    def prefill_time(self, new_tokens, past_tokens, decode_rows: int = 0,
                     decode_context: int = 0) -> float:
        new = np.asarray(new_tokens)
        if new.size == 0 and not decode_rows:
            return 0.0
        past = np.asarray(past_tokens)
        overhead = 0.0
        if _is_continuous(past, decode_rows):
            overhead = self.step_overhead(new.size + int(decode_rows),
                                          float(past.sum()) + float(decode_context))
        if new.size == 0:   # a pure decode iteration (iteration 0 of a continuous step)
            return float(self.decode_times(int(decode_rows), int(decode_context), 1)[0]) \
                + overhead
        x = prefill_features(new, past, decode_rows, decode_context, self.prefill_knot,
                             self.prefill_attn_knot)
        return float(x @ self.prefill_coef) + overhead

    def decode_times(self, rows: int, context_sum: int, iterations: int) -> np.ndarray:
        if iterations <= 0:
            return np.zeros(0)
        ctx = context_sum + rows * np.arange(iterations, dtype=float)
        return decode_features(np.full(iterations, float(rows)), ctx, self.decode_knot) \
            @ self.decode_coef


def build_profile(prefill_points: list[dict], decode_points: list[dict], meta: dict,
                  step_points: list[dict] | None = None) -> dict:
    """The profile dict (metadata + raw points + fitted coefficients + fit errors)."""
    dec = fit_decode(decode_points)
    step = fit_step(step_points, dec) if step_points else None
    pre = fit_prefill(prefill_points, step["coef"] if step else None)
    pre["points"] = prefill_points
    dec["points"] = decode_points
    out = {"format": FORMAT, "version": VERSION, **meta, "prefill": pre, "decode": dec}
    if step:
        step["points"] = step_points
        out["step"] = step
    return out


def save_profile(profile: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(profile, indent=1) + "\n", encoding="utf-8")
    return path


def _bad(path, what: str) -> UserError:
    return UserError(f"{path}: malformed profile ({what}); regenerate it with "
                     "`seqsched calibrate --model SHAPE_OR_PATH --out profile.json`")


def profile_from_dict(data: dict, path: str = "<profile>") -> ProfileCostModel:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(path, f"'format' is not {FORMAT!r}")
    if data.get("version") != VERSION:
        raise _bad(path, f"version {data.get('version')!r}, this seqsched reads {VERSION}")
    parts = {}
    attn_knot = np.inf
    for part, names in (("prefill", PREFILL_FEATURES), ("decode", DECODE_FEATURES)):
        sec = data.get(part)
        if not isinstance(sec, dict):
            raise _bad(path, f"no '{part}' section")
        if part == "prefill" and list(sec.get("features", [])) == PREFILL_FEATURES_V1:
            names = PREFILL_FEATURES_V1             # an older profile: no attention ridge
        elif part == "prefill":
            try:
                attn_knot = np.inf if sec.get("attn_knot") is None else float(sec["attn_knot"])
            except (TypeError, ValueError):
                raise _bad(path, "'prefill.attn_knot' is not a number") from None
        try:
            coef = np.asarray(sec["coef"], dtype=float)
            knot = float(sec.get("knot", 0.0))
        except (KeyError, TypeError, ValueError):
            raise _bad(path, f"'{part}.coef' missing or not numbers") from None
        if coef.shape != (len(names),) or not np.all(np.isfinite(coef)) or not np.isfinite(knot):
            raise _bad(path, f"'{part}.coef' must be {len(names)} finite numbers "
                             f"({', '.join(names)})")
        if list(sec.get("features", names)) != names:
            raise _bad(path, f"'{part}.features' are {sec.get('features')}, expected {names}")
        if len(coef) < len(PREFILL_FEATURES) and part == "prefill":
            coef = np.append(coef, 0.0)
        parts[part] = (coef, knot)
    step_coef = np.zeros(len(STEP_FEATURES))
    if "step" in data:                      # optional: continuous-step overhead
        sec = data["step"]
        try:
            step_coef = np.asarray(sec["coef"], dtype=float)
        except (KeyError, TypeError, ValueError):
            raise _bad(path, "'step.coef' missing or not numbers") from None
        if step_coef.shape != (len(STEP_FEATURES),) or not np.all(np.isfinite(step_coef)):
            raise _bad(path, f"'step.coef' must be {len(STEP_FEATURES)} finite numbers "
                             f"({', '.join(STEP_FEATURES)})")
    meta = {k: v for k, v in data.items() if k not in ("prefill", "decode", "step")}
    name = f"profile:{data.get('name', Path(str(path)).stem)}"
    return ProfileCostModel(parts["prefill"][0], parts["prefill"][1], parts["decode"][0],
                            parts["decode"][1], name=name, meta=meta, step_coef=step_coef,
                            prefill_attn_knot=attn_knot)


def resolve_profile_path(path: str | Path) -> Path:
    """A profile path as given, or the built-in profile of that name (backends/profiles/)."""
    p = Path(path)
    if not p.exists() and (BUILTIN_DIR / f"{path}.json").is_file():
        return BUILTIN_DIR / f"{path}.json"
    return p


def read_profile(path: str | Path) -> dict:
    path = resolve_profile_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: no such profile; create one with `seqsched calibrate` or use "
                        "a built-in one under backends/profiles/") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the profile ({e}); give a profile JSON") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise _bad(path, f"not JSON: {e.msg} at line {e.lineno}") from None


def load_profile(path: str | Path) -> ProfileCostModel:
    """A `CostModel` from a profile JSON (or the name of a built-in profile)."""
    p = resolve_profile_path(path)
    return profile_from_dict(read_profile(p), str(p))


BUILTIN_DIR = Path(__file__).resolve().parent / "profiles"


def builtin_profiles() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.json"))


__all__ = ["ProfileCostModel", "load_profile", "read_profile", "resolve_profile_path",
           "save_profile", "build_profile",
           "profile_from_dict", "fit_prefill", "fit_decode", "prefill_features",
           "decode_features", "step_features", "fit_step", "builtin_profiles",
           "PREFILL_FEATURES", "DECODE_FEATURES", "STEP_FEATURES"]
