"""Forecasts kept in a sweep's registry, checked when their run lands.

A forecast (``scalinglab forecast``, :mod:`scalinglab.study.forecast`) predicts a run's final loss with
intervals before it is trained. The registry stores the forecast's JSON next to the run; when the run
finishes with a loss, :func:`evaluate` compares the two and the verdict is stored with it. Pure JSON logic,
so the registry needs nothing from ``laws`` or ``study``.

The table is created on first use (``CREATE TABLE IF NOT EXISTS``) rather than by a schema migration: a
registry without forecasts stays byte-for-byte what it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from scalinglab.errors import DataError

FORECASTS_SQL = """
CREATE TABLE IF NOT EXISTS forecasts (
    run_id TEXT PRIMARY KEY,
    content_sha256 TEXT NOT NULL,
    forecast_json TEXT NOT NULL,
    created_at REAL NOT NULL,
    observed REAL,
    check_json TEXT,
    checked_at REAL
)
"""


def check_observed(observed: Any) -> float:
    """``observed`` as a positive finite loss; one-line DataError otherwise."""
    try:
        y = float(observed)
    except (TypeError, ValueError):
        raise DataError(f"observed loss {observed!r} is not a number; give the measured loss, e.g. 2.233") \
            from None
    if not (math.isfinite(y) and y > 0):
        raise DataError(f"observed loss {observed!r} must be a positive finite number (a loss in nats/token)")
    return y


def evaluate(prediction: Mapping[str, Any], observed: Any) -> dict[str, Any]:
    """Error of ``prediction`` (``{"point": L, "intervals": [{"level", "ci", "pi"?}, ...]}``) against the
    observed loss, and whether each interval held."""
    y = check_observed(observed)
    point = float(prediction["point"])
    held = []
    for pair in prediction.get("intervals") or ():
        row = {"level": float(pair["level"])}
        for kind in ("ci", "pi", "pi_calibrated"):
            if pair.get(kind) is not None:
                lo, hi = (float(x) for x in pair[kind])
                row[kind] = [lo, hi]
                row[f"{kind}_held"] = bool(lo <= y <= hi)
        held.append(row)
    return {"observed": y, "predicted": point, "error": point - y, "rel_error": point / y - 1,
            "intervals": held}


def _has_table(conn) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'forecasts'")
    return found.fetchone() is not None


def store(conn, run_id: str, forecast: Mapping[str, Any], now: float) -> None:
    """Keep ``forecast`` (a forecast file's JSON, with ``prediction`` and ``content_sha256``) for ``run_id``;
    a later forecast for the same run replaces it and clears its check."""
    import json

    if "prediction" not in forecast or "content_sha256" not in forecast:
        raise DataError("not a forecast (expected the JSON `scalinglab forecast --out` writes)")
    conn.execute(FORECASTS_SQL)
    conn.execute("INSERT INTO forecasts (run_id, content_sha256, forecast_json, created_at) "
                 "VALUES (?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET content_sha256 = "
                 "excluded.content_sha256, forecast_json = excluded.forecast_json, created_at = "
                 "excluded.created_at, observed = NULL, check_json = NULL, checked_at = NULL",
                 (run_id, str(forecast["content_sha256"]), json.dumps(dict(forecast), sort_keys=True), now))


def check_landed(conn, run_id: str, loss: float | None, now: float) -> None:
    """When ``run_id`` lands with a loss, check its forecast (if any) and store the verdict."""
    import json

    if loss is None or not _has_table(conn):
        return
    row = conn.execute("SELECT forecast_json FROM forecasts WHERE run_id = ?", (run_id,)).fetchone()
    if row is None:
        return
    try:
        verdict = evaluate(json.loads(row[0])["prediction"], loss)
    except DataError:  # a NaN/non-positive loss cannot check anything; the run's own status says why
        return
    conn.execute("UPDATE forecasts SET observed = ?, check_json = ?, checked_at = ? WHERE run_id = ?",
                 (verdict["observed"], json.dumps(verdict, sort_keys=True), now, run_id))


def rows(conn) -> list[dict[str, Any]]:
    """Every kept forecast with its check (None until the run lands)."""
    import json

    if not _has_table(conn):
        return []
    out = []
    for r in conn.execute("SELECT run_id, forecast_json, check_json FROM forecasts ORDER BY run_id"):
        out.append({"run_id": r[0], "forecast": json.loads(r[1]),
                    "check": None if r[2] is None else json.loads(r[2])})
    return out
