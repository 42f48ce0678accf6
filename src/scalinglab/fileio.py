"""Small file helpers every step shares: atomic writes and JSON-safe conversion (torch-free).

Every write of a fit, a registry export, a run summary or a report goes through a temp file in the same
folder, fsync, then rename, so a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (temp file in the same folder, fsync, rename); return the
    path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600; a plain open() would give 0666 & ~umask (0644 by default), which is what a
        # group on a shared cluster needs to read a run's files.
        os.fchmod(fd, 0o666 & ~process_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def process_umask() -> int:
    """The process umask, read without changing it where Linux reports it (``/proc/self/status``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: the classic set-and-restore (not thread-safe, hence the fallback)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    """Write ``obj`` as strict JSON (NumPy made plain, non-finite floats as null) atomically."""
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=indent, allow_nan=False))


def jsonable(obj: Any) -> Any:
    """NumPy scalars/arrays to plain Python, non-finite floats to ``None``, tuples to lists: valid strict
    JSON."""
    if isinstance(obj, np.ndarray):
        return [jsonable(v) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj
