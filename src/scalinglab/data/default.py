"""The default corpus: the standard library's source, prepared once into a per-user cache folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from scalinglab.data.prepare import MANIFEST, prepare
from scalinglab.errors import DataError


def cache_dir() -> Path:
    """``$SCALINGLAB_CACHE``, else ``~/.cache/scalinglab``."""
    return Path(os.environ.get("SCALINGLAB_CACHE", Path.home() / ".cache" / "scalinglab"))


def default_corpus() -> Path:
    """Path of the prepared byte-level stdlib corpus, preparing it on first use (~30 MB of text, a second)."""
    out = cache_dir() / "corpora" / f"stdlib-py{sys.version_info.major}{sys.version_info.minor}-byte"
    if not (out / MANIFEST).is_file():
        try:
            prepare(["stdlib"], out)
        except DataError:
            if not (out / MANIFEST).is_file():  # another process may have prepared it meanwhile
                raise
    return out
