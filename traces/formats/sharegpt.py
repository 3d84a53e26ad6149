"""ShareGPT conversation dumps (JSON: [{id, conversations: [{from, value}, ...]}]): the first
human turn is the prompt, the next gpt turn the output; token counts come from a local
tokenizer (``tokenizer=``) or a chars/4 estimate."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from seqsched.traces.formats.base import Format, _Converter, _resolve
from seqsched.traces.request import TraceError
from seqsched.traces.source import _Source

logger = logging.getLogger("seqsched.traces")


HUMAN_ROLES = {"human", "user"}
GPT_ROLES = {"gpt", "chatgpt", "assistant", "bard", "bing", "model"}


def _sharegpt(df, cmap, src, locate, options, rownums):
    tokenizer = options.get("tokenizer")
    keep_text = options.get("keep_text", True)
    ids, prompts, outputs, keep = [], [], [], np.zeros(len(df), bool)
    idcol = _resolve(df.columns, ["id"]).get("id")
    raw_ids = df[idcol].tolist() if idcol else list(range(len(df)))
    reasons = {"no human turn followed by a gpt turn": 0, "empty prompt or response": 0}
    for i, conv in enumerate(df[cmap["conversations"]].tolist()):
        if not isinstance(conv, (list, np.ndarray)):
            raise TraceError(f"{src.path}: {locate(i)}: conversations must be a list of "
                             "{from, value} turns")
        turns = [t for t in conv if isinstance(t, dict)]
        roles = [str(t.get("from", t.get("role", ""))).lower() for t in turns]
        h = next((k for k, r in enumerate(roles) if r in HUMAN_ROLES), None)
        g = None if h is None else next((k for k in range(h + 1, len(roles))
                                         if roles[k] in GPT_ROLES), None)
        if g is None:
            reasons["no human turn followed by a gpt turn"] += 1
            continue
        p = turns[h].get("value", turns[h].get("content")) or ""
        o = turns[g].get("value", turns[g].get("content")) or ""
        if not str(p).strip() or not str(o).strip():
            reasons["empty prompt or response"] += 1
            continue
        keep[i] = True
        ids.append(str(raw_ids[i]))
        prompts.append(str(p))
        outputs.append(str(o))
    skipped = {k: v for k, v in reasons.items() if v}
    if skipped:
        logger.warning("%s: skipped %d conversation(s): %s", src.path, sum(skipped.values()),
                       ", ".join(f"{v} with {k}" for k, v in skipped.items()))
    if not ids:
        raise TraceError(f"{src.path}: no conversation has a human turn followed by a gpt "
                         "turn; expected [{id, conversations: [{from: human, value}, "
                         "{from: gpt, value}]}]")
    if tokenizer:
        p_len, o_len = _tokenize(tokenizer, prompts, outputs, src)
        method = f"tokenizer:{Path(str(tokenizer)).name}"
    else:
        p_len = np.array([max(1, math.ceil(len(s) / 4)) for s in prompts])
        o_len = np.array([max(1, math.ceil(len(s) / 4)) for s in outputs])
        method = "chars/4 estimate"
        logger.warning("%s: token counts are a chars/4 ESTIMATE (no --tokenizer given); pass "
                       "--tokenizer PATH (a local Hugging Face tokenizer) for exact counts",
                       src.path)
    ids = pd.Series(ids)
    dup = ids.duplicated(keep=False)
    if dup.any():
        ids[dup] = ids[dup] + "#" + ids[dup].groupby(ids[dup]).cumcount().astype(str)
    out = pd.DataFrame({"id": ids, "arrival_s": np.zeros(len(ids)), "prompt_tokens": p_len,
                        "output_tokens": o_len})
    if keep_text:
        out["prompt"] = prompts
    out["token_count"] = method
    return out, {}, keep


def _tokenize(tokenizer: str, prompts: list[str], outputs: list[str], src: _Source):
    """Exact token counts with a local tokenizer: a tokenizer.json file (tokenizers) or a
    Hugging Face tokenizer directory (transformers, imported lazily; no downloads)."""
    path = Path(str(tokenizer))
    if not path.exists():
        raise TraceError(f"{path}: tokenizer not found; give a local tokenizer directory or "
                         "tokenizer.json (no downloads are attempted)")
    try:
        if path.is_file():
            from tokenizers import Tokenizer
            tok = Tokenizer.from_file(str(path))
            p = [len(e.ids) for e in tok.encode_batch(prompts, add_special_tokens=True)]
            o = [len(e.ids) for e in tok.encode_batch(outputs, add_special_tokens=False)]
        else:
            from transformers import AutoTokenizer
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            p = [len(x) for x in tok(prompts, add_special_tokens=True)["input_ids"]]
            o = [len(x) for x in tok(outputs, add_special_tokens=False)["input_ids"]]
    except Exception as e:  # noqa: BLE001 - any loader failure is the user's path
        raise TraceError(f"{path}: cannot load the tokenizer ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); give a directory "
                         "with tokenizer.json/tokenizer_config.json") from None
    return np.maximum(np.asarray(p), 1), np.asarray(o)


FORMAT = Format("sharegpt", "ShareGPT JSON: [{id, conversations: [{from, value}, ...]}]; first "
                "human turn -> prompt, next gpt turn -> output; tokens via --tokenizer or chars/4",
                ("conversations",))

CONVERTER = _Converter(_sharegpt, options=("tokenizer", "keep_text"))
