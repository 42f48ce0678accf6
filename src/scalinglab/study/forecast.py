"""Preregistered forecasts: write a prediction with its intervals before the run, check it after.

``write_forecast`` records what a bootstrapped law predicts for one run (the loss at N, D, or the
compute-optimal run at C), with confidence and prediction intervals (:mod:`scalinglab.laws.intervals`), the
fit's provenance (its data hash, options and scalinglab version, from the saved fit; the fit file's own
SHA-256) and a content hash. ``check_forecast`` refuses a file whose bytes changed after writing, then
reports the error and whether each interval held. Marin's preregistered 1e23-FLOP run is the model: predicted
2.252 from runs <= 3e20, measured 2.233.

The content hash is SHA-256 of the file's exact bytes with the hash's own 64 hex digits replaced by zeros,
so altering any byte (a digit, a space) is detected.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalinglab.errors import ConfigError, DataError
from scalinglab.fileio import atomic_write_text
from scalinglab.sweep.forecasts import check_observed, evaluate

__all__ = ["ForecastCheck", "check_forecast", "load_forecast", "write_forecast"]

_HASH_KEY = '"content_sha256": "'
_PLACEHOLDER = "0" * 64
FORMAT = "scalinglab-forecast/1"


def _digest(raw: bytes) -> str:
    """SHA-256 of ``raw`` with the stored hash value blanked (the same bytes the writer hashed)."""
    text = raw.decode("utf-8")
    at = text.find(_HASH_KEY)
    if at < 0:
        raise DataError("forecast file has no content_sha256; it was not written by `scalinglab forecast`")
    start = at + len(_HASH_KEY)
    blanked = text[:start] + _PLACEHOLDER + text[start + 64:]
    return hashlib.sha256(blanked.encode("utf-8")).hexdigest()


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _query(law, n_params, n_tokens, compute_flops, levels) -> tuple[dict, dict]:
    from scalinglab.laws.intervals import allocation_intervals, loss_intervals

    if compute_flops is not None:
        if n_params is not None or n_tokens is not None:
            raise ConfigError("give --params N --tokens D, or --compute C, not both")
        alloc = allocation_intervals(law, compute_flops, levels=levels)
        query = {"compute_flops": float(compute_flops), "n_params": alloc["n_params"]["point"],
                 "n_tokens": alloc["n_tokens"]["point"], "compute_optimal": True}
        return query, {**alloc["loss"], "allocation": {k: alloc[k] for k in ("n_params", "n_tokens")}}
    if n_params is None or n_tokens is None:
        raise ConfigError("a forecast needs --params N and --tokens D (or --compute C for the optimal run)")
    li = loss_intervals(law, n_params, n_tokens, levels=levels)
    query = {"n_params": float(n_params), "n_tokens": float(n_tokens),
             "compute_flops": 6.0 * n_params * n_tokens, "compute_optimal": False}
    return query, li.to_dict()


def write_forecast(law_path: str | os.PathLike, out: str | os.PathLike, *, n_params: float | None = None,
                   n_tokens: float | None = None, compute_flops: float | None = None,
                   levels: Sequence[float] = (0.8, 0.95), run_id: str | None = None) -> dict[str, Any]:
    """Write the forecast JSON to ``out`` (atomically) and return it.

    ``law_path`` is a saved fit (``scalinglab fit ... --bootstrap N --out fit.json``); its samples give the
    intervals, its ``provenance`` block the data hash and options.
    """
    from scalinglab import __version__
    from scalinglab.laws.presets import load_law
    from scalinglab.laws.saved import read_fit_json

    path = Path(law_path)
    doc = read_fit_json(path)
    law = load_law(str(path))
    query, prediction = _query(law, n_params, n_tokens, compute_flops, levels)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    body = {"format": FORMAT, "created": created, "run_id": run_id, "query": query,
            "prediction": prediction,
            "law": {"path": str(path), "name": law.name, "file_sha256": _file_sha256(path),
                    "params": dict(doc.get("params") or {}), "provenance": doc.get("provenance")},
            "scalinglab_version": __version__, "content_sha256": _PLACEHOLDER}
    text = json.dumps(body, indent=2, sort_keys=False, allow_nan=False) + "\n"
    digest = _digest(text.encode("utf-8"))
    text = text.replace(_HASH_KEY + _PLACEHOLDER, _HASH_KEY + digest, 1)
    atomic_write_text(out, text)
    return {**body, "content_sha256": digest}


def load_forecast(path: str | os.PathLike) -> dict[str, Any]:
    """The forecast in ``path`` after checking its content hash; DataError if it was altered."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise DataError(f"forecast file {str(p)!r} not found; write one with `scalinglab forecast --out`") \
            from None
    except OSError as err:
        raise DataError(f"cannot read forecast file {str(p)!r}: {err.strerror or err}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
        digest = _digest(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"{str(p)!r} is not a forecast file (not valid JSON); was it altered after "
                        "writing?") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"{str(p)!r} is not a forecast file (format {FORMAT!r} expected)")
    if doc.get("content_sha256") != digest:
        raise DataError(f"{str(p)!r} was altered after it was written (content hash mismatch: stored "
                        f"{str(doc.get('content_sha256'))[:12]}..., computed {digest[:12]}...); a "
                        "preregistered forecast must be checked as written")
    return doc


@dataclass(frozen=True)
class ForecastCheck:
    """A forecast against the observed loss: the error and, per level, whether the CI and PI held."""

    forecast: Mapping[str, Any]
    verdict: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"query": dict(self.forecast["query"]), "content_sha256": self.forecast["content_sha256"],
                "created": self.forecast.get("created"), **dict(self.verdict)}


def check_forecast(path: str | os.PathLike, observed: Any) -> ForecastCheck:
    """Check the forecast in ``path`` against the measured loss ``observed`` (> 0, finite)."""
    y = check_observed(observed)  # bad input first, before reading anything
    doc = load_forecast(path)
    return ForecastCheck(forecast=doc, verdict=evaluate(doc["prediction"], y))
