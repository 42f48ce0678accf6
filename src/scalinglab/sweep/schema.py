"""The registry's SQL schema, as an append-only list of migrations (``PRAGMA user_version`` counts those
applied).

Kept apart from :mod:`scalinglab.sweep.registry` so the schema's history reads in one place.
"""

from __future__ import annotations

# Migration i upgrades a database from user_version i to i + 1. Never edit a released migration: append one.
MIGRATIONS: tuple[str, ...] = (
    # v0 -> v1: sweeps, runs, summaries.
    """
    CREATE TABLE sweeps (
        sweep_id TEXT PRIMARY KEY,
        spec_hash TEXT NOT NULL,
        spec_json TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        sweep_id TEXT NOT NULL REFERENCES sweeps(sweep_id),
        config_hash TEXT NOT NULL,
        config_json TEXT NOT NULL,
        budget REAL,
        n_params REAL,
        n_tokens REAL,
        compute_flops REAL,
        status TEXT NOT NULL CHECK (status IN ('queued','running','done','failed','diverged')),
        attempts INTEGER NOT NULL DEFAULT 0,
        host TEXT,
        pid INTEGER,
        heartbeat REAL,
        error TEXT,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        UNIQUE (sweep_id, config_hash)
    );
    CREATE INDEX runs_status ON runs(status);
    CREATE TABLE summaries (
        run_id TEXT PRIMARY KEY REFERENCES runs(run_id),
        loss REAL,
        summary_json TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # v1 -> v2: artefact paths (run dir, checkpoints, report...) and the parent of a cooldown branch.
    """
    CREATE TABLE artefacts (
        run_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        path TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (run_id, kind)
    );
    ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
    ALTER TABLE runs ADD COLUMN position INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
