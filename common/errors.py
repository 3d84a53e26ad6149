"""The one exception type the CLI turns into a single error line and exit code 2, and the
suggestion such a line gives for a mistyped name."""

from __future__ import annotations

import difflib
import re


class UserError(ValueError):
    """Bad input from the user: the message names the problem and the fix."""


def fold_name(text) -> str:
    """A typed name with case, spaces and underscores not mattering: "H100 SXM" = "h100-sxm"."""
    return re.sub(r"[\s_]+", "-", str(text).strip()).lower()


def did_you_mean(name, choices) -> str:
    """" (did you mean X?)" for the one of `choices` closest to a mistyped `name` (compared
    as `fold_name` writes them), "" when none is close."""
    folded = {fold_name(c): c for c in choices}
    close = difflib.get_close_matches(fold_name(name), list(folded), 1, 0.6)
    return f" (did you mean {folded[close[0]]}?)" if close else ""
