"""Library parameter names → CLI flags, in one table.

Library errors speak the Python caller's language (``skip_bad_budgets=True``, ``n_resamples``); the CLI prints
them with its own flags instead. :func:`to_cli` rewrites a message once, where ``cli.app`` prints the one-line
error, so no library module needs to know a flag exists.

Keys are matched as whole words (``name=value`` forms first, being longer); a value may be any text.
One block per package keeps the table easy to extend.
"""

from __future__ import annotations

import re
from functools import lru_cache

PARAM_FLAGS: dict[str, str] = {
    # ---- laws / fit
    "skip_bad_budgets=True": "--skip-bad-budgets",
    # ---- plan

    # ---- train / parallel
    "resume=True": "--resume",
    "another run_dir": "another --out",
    "branch_from=CHECKPOINT": "--branch-from CHECKPOINT",
    "device='cpu'": "--device cpu",
    "device='auto'": "--device auto",

    # ---- sweep / study / report

    # ---- arch / model / data

}


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    keys = sorted(PARAM_FLAGS, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w])")


def to_cli(message: str) -> str:
    """``message`` with every library parameter named in :data:`PARAM_FLAGS` replaced by its CLI flag."""
    if not PARAM_FLAGS:
        return message
    return _pattern().sub(lambda m: PARAM_FLAGS[m.group(1)], message)
