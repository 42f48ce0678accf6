"""The sweep registry: one SQLite file per sweep folder that records every run and what became of it.

Why SQLite and not a CSV + grep: a sweep is killed, resumed, run by several workers at once; the registry must
say which runs are queued, running (by which host and pid, alive since when), done, failed or diverged (and
why), and survive a crash in the middle of a write. SQLite in WAL mode gives atomic transactions and
concurrent readers; every statement is parametrised. The schema is versioned with ``PRAGMA user_version`` and
upgraded by the migrations in :mod:`scalinglab.sweep.schema`; a file from a newer scalinglab, a corrupted
file, or a folder that holds a different sweep are refused with :class:`~scalinglab.errors.RegistryError` and
never modified.

This module must not import torch (the report and ``scalinglab fit`` read registries).
"""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scalinglab.errors import RegistryError
from scalinglab.fileio import atomic_write_text
from scalinglab.sweep import forecasts
from scalinglab.sweep.schema import MIGRATIONS, SCHEMA_VERSION

STATUSES = ("queued", "running", "done", "failed", "diverged")
FINISHED = ("done", "diverged")  # never repeated; "failed" runs may be retried
REGISTRY_FILENAME = "registry.sqlite"
EXPORT_COLUMNS = ("run_id", "n_params", "n_tokens", "compute_flops", "loss", "budget", "status")
# Appended when a run repeats data (TrainConfig.unique_tokens): U, epochs D/U and R_D = D/U - 1 (Muennighoff
# et al. 2023), so `scalinglab fit --form data_constrained` finds U without flags.
REPETITION_COLUMNS = ("unique_tokens", "epochs", "r_d")


@dataclass(frozen=True, kw_only=True)
class RunRecord:
    """One row of the runs table (plus its summary loss), as read back from the registry."""

    run_id: str
    sweep_id: str
    config_hash: str
    config: dict
    budget: float | None
    n_params: float | None
    n_tokens: float | None
    compute_flops: float | None
    status: str
    attempts: int
    host: str | None
    pid: int | None
    heartbeat: float | None
    error: str | None
    parent_run_id: str | None
    loss: float | None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def config_hash(config: Mapping[str, Any]) -> str:
    """Stable hash of a run configuration (sorted-key JSON, SHA-256): the identity of a run in a sweep."""
    import hashlib

    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _check_sqlite_header(path: Path) -> None:
    # SQLite files start with this 16-byte magic; anything else is refused before SQLite can touch it.
    if path.stat().st_size == 0:  # SQLite would take it as a fresh database and write a new sweep into it
        raise RegistryError(f"{path} is an empty file, not a registry; delete it or pass a new folder")
    with open(path, "rb") as fh:
        head = fh.read(16)
    if head != b"SQLite format 3\x00":
        raise RegistryError(f"{path} is not a scalinglab registry (not an SQLite file); move it away or use "
                            "another --out folder")


class Registry:
    """An open sweep registry. Use :meth:`open` (creates or upgrades the schema) and ``close()``/``with``.

    Parameters
    ----------
    path : Path
        The SQLite file (usually ``<sweep dir>/registry.sqlite``).
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path

    # -- opening --------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike, *, create: bool = True) -> Registry:
        """Open (and create or migrate) a registry; refuse newer schemas and corrupted files."""
        path = Path(path)
        if not path.exists() and not create:
            raise RegistryError(f"no registry at {path}; run `scalinglab sweep run --out {path.parent}` "
                                "first")
        if path.exists():
            _check_sqlite_header(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as err:
            raise RegistryError(f"registry {path} is unreadable ({err}); it was left untouched") from err
        if version > SCHEMA_VERSION:
            conn.close()
            raise RegistryError(f"registry {path} has schema version {version}, newer than this scalinglab "
                                f"supports ({SCHEMA_VERSION}); upgrade scalinglab to open it")
        reg = cls(conn, path)
        try:
            if version > 0:
                reg._check_integrity()
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            reg._migrate(version)
        except sqlite3.DatabaseError as err:
            conn.close()
            raise RegistryError(f"registry {path} is corrupted ({err}); it was left untouched") from err
        except RegistryError:
            conn.close()
            raise
        return reg

    def _check_integrity(self) -> None:
        rows = [ln for r in self._conn.execute("PRAGMA "
                                               "integrity_check").fetchall() for ln in str(r[0]).splitlines()]
        if rows != ["ok"]:
            # SQLite reports one problem per line (up to 100): keep the error to one line, name the first.
            first = next((r for r in rows if r.strip() and not r.startswith("***")), rows[0]).strip()
            raise RegistryError(f"registry {self.path} is corrupted (PRAGMA integrity_check: {len(rows)} "
                                f"problem line(s), first: {first}); it was left untouched - restore a backup "
                                "or move it away")

    def _migrate(self, version: int) -> None:
        for target in range(version, SCHEMA_VERSION):
            with self._tx():
                for stmt in _split_sql(MIGRATIONS[target]):
                    self._conn.execute(stmt)
                # PRAGMA cannot take a bound parameter; the value is our own integer constant.
                self._conn.execute(f"PRAGMA user_version = {int(target + 1)}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- small helpers --------------------------------------------------------------------------------
    def _tx(self):
        return _Transaction(self._conn)

    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def journal_mode(self) -> str:
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0])

    def integrity_check(self) -> str:
        rows = self._conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(r[0]) for r in rows)

    # -- sweeps ---------------------------------------------------------------------------------------
    def ensure_sweep(self, sweep_id: str, spec: Mapping[str, Any]) -> str:
        """Record the sweep (first time) or check that the folder holds this same sweep; returns its id."""
        spec_json = json.dumps(spec, sort_keys=True, default=str)
        digest = config_hash(spec)
        with self._tx():
            rows = self._conn.execute("SELECT sweep_id, spec_hash FROM sweeps").fetchall()
            for row in rows:
                if row["spec_hash"] != digest or row["sweep_id"] != sweep_id:
                    raise RegistryError(
                        f"{self.path.parent} holds a different sweep ({row['sweep_id']}, spec "
                        f"{row['spec_hash']}); use `scalinglab sweep resume` for it, or choose another --out "
                        "folder")
            if not rows:
                self._conn.execute("INSERT INTO sweeps (sweep_id, spec_hash, spec_json, created_at) "
                                   "VALUES (?, ?, ?, ?)", (sweep_id, digest, spec_json, time.time()))
        return sweep_id

    def sweep(self) -> dict | None:
        """The sweep held by this registry: ``{"sweep_id", "spec"}``, or None when empty."""
        row = self._conn.execute("SELECT sweep_id, spec_json FROM sweeps").fetchone()
        if row is None:
            return None
        return {"sweep_id": row["sweep_id"], "spec": json.loads(row["spec_json"])}

    # -- runs -----------------------------------------------------------------------------------------
    def add_run(self, sweep_id: str, run_id: str, config: Mapping[str, Any], *, budget: float | None = None,
                n_params: float | None = None, n_tokens: float | None = None,
                compute_flops: float | None = None, parent_run_id: str | None = None,
                position: int = 0) -> bool:
        """Queue a run unless one with the same config hash exists; returns True when it was added."""
        digest = config_hash(config)
        with self._tx():
            hit = self._conn.execute("SELECT run_id FROM runs WHERE sweep_id = ? AND config_hash = ?",
                                     (sweep_id, digest)).fetchone()
            if hit is not None:
                return False
            self._conn.execute(
                "INSERT INTO runs (run_id, sweep_id, config_hash, config_json, budget, n_params, n_tokens, "
                "compute_flops, status, attempts, created_at, parent_run_id, position) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)",
                (run_id, sweep_id, digest, json.dumps(config, sort_keys=True, default=str), budget, n_params,
                 n_tokens, compute_flops, time.time(), parent_run_id, position))
        return True

    def runs(self, status: str | tuple[str, ...] | None = None) -> list[RunRecord]:
        """All runs (optionally of some statuses), in sweep order."""
        sql = ("SELECT r.*, s.loss AS loss FROM runs r LEFT JOIN summaries s ON s.run_id = r.run_id")
        params: tuple = ()
        if status is not None:
            wanted = (status,) if isinstance(status, str) else tuple(status)
            sql += f" WHERE r.status IN ({','.join('?' * len(wanted))})"
            params = wanted
        sql += " ORDER BY r.position, r.created_at, r.run_id"
        return [_record(row) for row in self._conn.execute(sql, params).fetchall()]

    def get(self, run_id: str) -> RunRecord:
        row = self._conn.execute("SELECT r.*, s.loss AS loss FROM runs r LEFT JOIN summaries s "
                                 "ON s.run_id = r.run_id WHERE r.run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RegistryError(f"no run {run_id!r} in {self.path}")
        return _record(row)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for row in self._conn.execute("SELECT status, COUNT(*) AS n FROM runs GROUP BY status"):
            out[row["status"]] = int(row["n"])
        return out

    def claim(self, run_id: str, *, host: str | None = None, pid: int | None = None) -> bool:
        """Mark a queued run as running by this process; False when someone else has it, it failed (see
        :meth:`requeue_failed`) or it is finished. The check and the update happen in one transaction, so two
        workers never both claim it."""
        host = host or socket.gethostname()
        pid = os.getpid() if pid is None else pid
        now = time.time()
        with self._tx():
            cur = self._conn.execute(
                "UPDATE runs SET status = 'running', attempts = attempts + 1, host = ?, pid = ?, heartbeat = "
                "?, started_at = ?, error = NULL WHERE run_id = ? AND status = 'queued'",
                (host, pid, now, now, run_id))
            return cur.rowcount == 1

    def heartbeat(self, run_id: str) -> None:
        with self._tx():
            self._conn.execute("UPDATE runs SET heartbeat = ? WHERE run_id = ? AND status = 'running'",
                               (time.time(), run_id))

    def finish(self, run_id: str, status: str, *, error: str | None = None,
               summary: Mapping[str, Any] | None = None, loss: float | None = None) -> None:
        """Record the end of a run (done / failed / diverged) and its summary, in one transaction."""
        if status not in ("done", "failed", "diverged", "queued"):
            raise RegistryError(f"cannot finish run {run_id} with status {status!r}")
        now = time.time()
        with self._tx():
            self._conn.execute("UPDATE runs SET status = ?, error = ?, finished_at = ? "
                               "WHERE run_id = ?", (status, error, now, run_id))
            if summary is not None:
                self._conn.execute(
                    "INSERT INTO summaries (run_id, loss, summary_json, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT(run_id) DO UPDATE SET loss = excluded.loss, summary_json = "
                    "excluded.summary_json, updated_at = excluded.updated_at",
                    (run_id, loss, json.dumps(summary, sort_keys=True, default=str), now))
            if status == "done":
                forecasts.check_landed(self._conn, run_id, loss, now)  # a forecast checks itself on landing

    def update_counts(self, run_id: str, *, n_params: float, n_tokens: float, compute_flops: float) -> None:
        """Replace the planned N, D, C by the ones the trainer measured."""
        with self._tx():
            self._conn.execute("UPDATE runs SET n_params = ?, n_tokens = ?, compute_flops = ? WHERE run_id = "
                               "?",
                               (n_params, n_tokens, compute_flops, run_id))

    def summary(self, run_id: str) -> dict | None:
        row = self._conn.execute("SELECT summary_json FROM summaries WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else json.loads(row["summary_json"])

    def requeue_dead(self, *, stale_after_s: float = 600.0, host: str | None = None) -> list[str]:
        """Re-queue runs marked running whose process is gone (same host, pid not alive) or whose heartbeat
        is older than ``stale_after_s`` (any host). Returns the re-queued run ids."""
        host = host or socket.gethostname()
        now = time.time()
        dead = []
        for rec in self.runs("running"):
            gone = rec.host == host and (rec.pid is None or not pid_alive(rec.pid))
            stale = rec.heartbeat is None or now - rec.heartbeat > stale_after_s
            if gone or stale:
                dead.append(rec.run_id)
        with self._tx():
            for run_id in dead:
                self._conn.execute("UPDATE runs SET status = 'queued', pid = NULL, "
                                   "error = 'worker process died; re-queued' "
                                   "WHERE run_id = ? AND status = 'running'", (run_id,))
        return dead

    def requeue_failed(self) -> list[str]:
        """Give failed runs another attempt (a resume does this once; a run never loops within one
        session)."""
        ids = [r.run_id for r in self.runs("failed")]
        with self._tx():
            self._conn.execute("UPDATE runs SET status = 'queued' WHERE status = 'failed'")
        return ids

    def next_claimable(self) -> str | None:
        """The first queued run (sweep order) whose parent run, if any, is done."""
        row = self._conn.execute(
            "SELECT r.run_id FROM runs r LEFT JOIN runs p ON p.run_id = r.parent_run_id "
            "WHERE r.status = 'queued' AND (r.parent_run_id IS NULL OR p.status = 'done') "
            "ORDER BY r.position, r.created_at, r.run_id LIMIT 1").fetchone()
        return None if row is None else str(row["run_id"])

    # -- artefacts ------------------------------------------------------------------------------------
    def set_artefact(self, run_id: str, kind: str, path: str | os.PathLike) -> None:
        with self._tx():
            self._conn.execute(
                "INSERT INTO artefacts (run_id, kind, path, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(run_id, kind) DO UPDATE SET path = excluded.path, updated_at = "
                "excluded.updated_at",
                (run_id, kind, str(path), time.time()))

    def artefacts(self, run_id: str) -> dict[str, str]:
        rows = self._conn.execute("SELECT kind, path FROM artefacts WHERE run_id = ?", (run_id,)).fetchall()
        return {r["kind"]: r["path"] for r in rows}

    # -- forecasts (sweep/forecasts.py) ------------------------------------------------------------------
    def add_forecast(self, run_id: str, forecast: Mapping[str, Any]) -> None:
        """Keep a forecast of ``run_id``'s final loss; it is checked when the run finishes with a loss."""
        self.get(run_id)  # refuses an unknown run
        with self._tx():
            forecasts.store(self._conn, run_id, forecast, time.time())

    def forecasts(self) -> list[dict[str, Any]]:
        """Kept forecasts with their checks (``check`` None until the run lands)."""
        return forecasts.rows(self._conn)

    # -- task evaluations (sweep/evals.py) ---------------------------------------------------------------
    def record_eval(self, run_id: str, task: str, result: Mapping[str, Any]) -> None:
        """Keep ``scalinglab eval``'s record of ``run_id`` on ``task`` (replacing an earlier one)."""
        from scalinglab.sweep import evals

        self.get(run_id)  # refuses an unknown run
        with self._tx():
            evals.store(self._conn, run_id, task, result, time.time())

    def evals(self) -> list[dict[str, Any]]:
        """Stored task evaluations, one dict per (run, task)."""
        from scalinglab.sweep import evals

        return evals.rows(self._conn)

    # -- export ---------------------------------------------------------------------------------------
    def export_runs_csv(self, path: str | os.PathLike) -> Path:
        """Write the runs table that ``scalinglab fit`` reads with no flags (atomic write).

        Columns: ``run_id,n_params,n_tokens,compute_flops,loss,budget,status``. Every run is written (failed
        and diverged ones too, with their status and an empty loss) so the table is a full record; the fit
        keeps only ``done`` rows.
        """
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        runs = self.runs()
        repeated = any(rec.config.get("unique_tokens") for rec in runs)
        writer.writerow(EXPORT_COLUMNS + (REPETITION_COLUMNS if repeated else ()))
        for rec in runs:
            loss = rec.loss if rec.status == "done" else None
            row = [rec.run_id, _num(rec.n_params), _num(rec.n_tokens), _num(rec.compute_flops),
                   _num(loss), _num(rec.budget), rec.status]
            writer.writerow(row + (_repetition(rec) if repeated else []))
        return atomic_write_text(path, buf.getvalue())


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT/ROLLBACK: take the write lock up front so check-then-update is atomic."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, *_):
        self._conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def _split_sql(script: str) -> Iterator[str]:
    for stmt in script.split(";"):
        if stmt.strip():
            yield stmt


def _record(row: sqlite3.Row) -> RunRecord:
    return RunRecord(run_id=row["run_id"], sweep_id=row["sweep_id"], config_hash=row["config_hash"],
                     config=json.loads(row["config_json"]), budget=row["budget"], n_params=row["n_params"],
                     n_tokens=row["n_tokens"], compute_flops=row["compute_flops"], status=row["status"],
                     attempts=int(row["attempts"]), host=row["host"], pid=row["pid"],
                     heartbeat=row["heartbeat"], error=row["error"], parent_run_id=row["parent_run_id"],
                     loss=row["loss"])


def _repetition(rec: RunRecord) -> list[str]:
    """U, epochs and R_D of a run (U = D when the run did not cap its unique tokens)."""
    d = rec.n_tokens if rec.n_tokens is not None else rec.config.get("n_tokens")
    u = rec.config.get("unique_tokens") or d
    if not d or not u:
        return ["", "", ""]
    return [_num(u), _num(d / u), _num(max(d / u - 1.0, 0.0))]


def _num(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    # A zombie (killed child not yet reaped) still answers kill(0); look at its state where /proc exists.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
