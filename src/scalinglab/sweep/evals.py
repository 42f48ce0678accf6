"""Task evaluations (``scalinglab eval``) kept in a sweep's registry, one row per (run, task).

Like the forecasts table, it is created on first write (``CREATE TABLE IF NOT EXISTS``) rather than by a
schema migration, so a registry that was never evaluated stays what it was and reading never writes. Plain
JSON, no torch: the report reads it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

EVALS_SQL = """
CREATE TABLE IF NOT EXISTS evals (
    run_id TEXT NOT NULL,
    task TEXT NOT NULL,
    pass_at_1 REAL,
    result_json TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, task)
)
"""


def store(conn: sqlite3.Connection, run_id: str, task: str, result: Mapping[str, Any], now: float) -> None:
    conn.execute(EVALS_SQL)
    pass_at_1 = (result.get("pass_at_k") or [None])[0]
    conn.execute("INSERT INTO evals (run_id, task, pass_at_1, result_json, updated_at) "
                 "VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT(run_id, task) DO UPDATE SET pass_at_1 = excluded.pass_at_1, "
                 "result_json = excluded.result_json, updated_at = excluded.updated_at",
                 (run_id, task, pass_at_1, json.dumps(dict(result), sort_keys=True), now))


def rows(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every stored evaluation (``run_id``, ``task``, and the eval record's fields), oldest run id first."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'evals'").fetchone() is None:
        return []
    found = conn.execute("SELECT run_id, task, result_json FROM evals ORDER BY run_id, task").fetchall()
    return [{**json.loads(r["result_json"]), "run_id": r["run_id"], "task": r["task"]} for r in found]
