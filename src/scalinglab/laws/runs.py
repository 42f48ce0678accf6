"""A strict CSV loader with column mapping for the runs table (:class:`RunsTable`, defined in
:mod:`scalinglab.laws.runs_table` and re-exported here) that every approach fits from.

Columns are found by name (``ALIASES``) or by flag; two of N, D, C are enough (the third from C = 6ND), and C
alone serves compute-only forms; rows can be filtered (``--where``), excluded by a flag column, dropped by a
rule, or dropped as the k highest losses. Exact duplicate rows are dropped with a note (``keep_duplicates``).

Bad input never produces a traceback of another type: every problem is one :class:`DataError` line that says
what was wrong and how to fix it.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from scalinglab.errors import DataError, ScalingLabError
from scalinglab.laws.runs_table import RunsTable, _complete_ndc, group_by_log_gap

__all__ = ["ALIASES", "RunsTable", "group_by_log_gap", "load_runs_csv"]

log = logging.getLogger(__name__)

# Header names recognised without flags (case-insensitive), in order of preference. The sweep's
# `sweep export` writes run_id,n_params,n_tokens,compute_flops,loss,budget,status.
ALIASES: dict[str, tuple[str, ...]] = {
    "n": ("n_params", "n", "params", "parameters", "model size", "model_size", "parameter_count",
          "num_params"),
    "d": ("n_tokens", "d", "tokens", "training_tokens", "num_tokens", "train_tokens"),
    "c": ("compute_flops", "c", "flops", "compute", "training flop", "training_flops", "compute_budget"),
    "loss": ("loss", "final_loss", "val_loss", "validation_loss", "eval_loss"),
    "budget": ("budget", "isoflop_budget", "budget_flops"),
    "unique": ("unique_tokens", "u_unique_tokens"),
    "run_id": ("run_id", "run", "name"),
    "status": ("status",),
}
_OK_STATUS = {"", "done", "ok", "completed", "complete", "success", "succeeded", "finished"}
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f", ""}
_RULE_RE = re.compile(r"^\s*([^<>=!]+?)\s*(>=|<=|==|!=|>|<|=)\s*(.+?)\s*$")
MAX_BYTES = 200 * 2**20  # refuse anything larger than a sane runs table


# ------------------------------------------------------------------------------------------------- loading
def load_runs_csv(path: str | Path, *, n_col: str | None = None, d_col: str | None = None,
                  c_col: str | None = None, loss_col: str | None = None, budget_col: str | None = None,
                  run_id_col: str | Sequence[str] | None = None, exclude_col: str | None = None,
                  where: Mapping[str, str] | None = None, drop_top_loss: int | None = None,
                  drop_where: str | Sequence[str] | None = None, min_points: int = 1,
                  unique_col: str | None = None, keep_duplicates: bool = False) -> RunsTable:
    """Read a runs table from a CSV file.

    Parameters
    ----------
    path : str or Path
        The CSV file (header row, one run per row).
    n_col, d_col, c_col, loss_col, budget_col : str, optional
        Column names for N, D, C, loss and the IsoFLOP budget. Unset columns are found by common names
        (``n_params``, ``N``, ``Model Size``, ``tokens``, ``Training FLOP``, ``flops``, ``loss``, ...). Two of
        N, D, C are needed; the third follows from C = 6ND and a note says so. C alone (with the loss) is
        accepted for compute-only forms such as ``saturating_c``; N and D are then None.
    run_id_col : str or sequence of str, optional
        Column(s) identifying a training run (several are joined), for Approach 1.
    exclude_col : str, optional
        A boolean flag column (true/false, 1/0, yes/no); rows flagged true are dropped (e.g. ``outlier``).
    where : mapping, optional
        Keep only rows whose column equals the value, e.g. ``{"experiment": "llama_3__raw_loss"}``.
    drop_top_loss : int, optional
        Drop the k highest-loss rows (Besiroglu et al. 2024 drop the 5 highest-loss Chinchilla runs).
    drop_where : str or sequence of str, optional
        Drop rows matching a rule ``COLUMN OP VALUE`` with OP in ``> >= < <= == !=``, e.g. ``"loss>5"``.
    min_points : int
        Fewer rows than this after filtering is an error.
    unique_col : str, optional
        Column of unique tokens U (found as ``unique_tokens`` or ``U_unique_tokens`` when unset), for the
        data-constrained form.
    keep_duplicates : bool
        Keep rows that repeat an earlier row cell for cell. By default they are dropped with a note: a
        copied row counts twice in a fit and shrinks its bootstrap intervals without adding information.

    Returns
    -------
    RunsTable

    Raises
    ------
    DataError
        Missing/unreadable file, not a CSV, missing columns, non-numeric or non-positive values, too few rows.
    """
    try:
        return _load(Path(path), n_col, d_col, c_col, loss_col, budget_col, run_id_col, exclude_col,
                     where, drop_top_loss, drop_where, min_points, unique_col, keep_duplicates)
    except ScalingLabError:
        raise
    except (csv.Error, UnicodeError, ValueError, OverflowError, MemoryError) as err:
        # Anything the parsers trip over is bad input, reported as one line.
        raise DataError(f"{path}: cannot read as a runs CSV ({type(err).__name__}: {err}); "
                        "give a UTF-8 CSV with a header row") from None


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.exists():
        raise DataError(f"runs file {path} does not exist; check the path")
    if not path.is_file():
        raise DataError(f"runs file {path} is not a regular file; give a CSV file")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read runs file {path}: {err.strerror or err}") from None
    if len(raw) > MAX_BYTES:
        raise DataError(f"runs file {path} is larger than {MAX_BYTES // 2**20} MiB; is it really a runs CSV?")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError(f"{path} is not a CSV (not UTF-8 text); give a comma-separated text file") from None
    if "\x00" in text:
        raise DataError(f"{path} is not a CSV (contains NUL bytes); give a comma-separated text file")
    csv.field_size_limit(MAX_BYTES)
    rows = [r for r in csv.reader(io.StringIO(text, newline="")) if any(c.strip() for c in r)]
    if not rows:
        raise DataError(f"{path} is empty; a runs CSV needs a header row and at least one run")
    header = [h.strip() for h in rows[0]]
    if len(header) < 2 or len(set(header)) != len(header) or any(not h for h in header):
        raise DataError(f"{path} is not a runs CSV: the header {header[:8]} needs >= 2 distinct, non-empty "
                        "column names")
    return header, rows[1:]


def _find(header: list[str], explicit: str | None, key: str) -> str | None:
    if explicit is not None:
        if explicit not in header:
            raise DataError(f"column {explicit!r} not found; columns present: {', '.join(header)}")
        return explicit
    lower = {h.lower(): h for h in header}
    for alias in ALIASES[key]:
        if alias in lower:
            return lower[alias]
    return None


def _load(path, n_col, d_col, c_col, loss_col, budget_col, run_id_col, exclude_col, where, drop_top_loss,
          drop_where, min_points, unique_col=None, keep_duplicates=False) -> RunsTable:
    header, rows = _read_rows(path)
    cols = {k: _find(header, v, k) for k, v in
            (("n", n_col), ("d", d_col), ("c", c_col), ("loss", loss_col), ("budget", budget_col),
             ("unique", unique_col))}
    if cols["loss"] is None:
        raise DataError(f"{path}: no loss column; columns present: {', '.join(header)} (use loss_col=)")
    present = [k for k in "ndc" if cols[k] is not None]
    if len(present) < 2 and present != ["c"]:  # C alone serves compute-only forms (saturating_c)
        raise DataError(f"{path}: need two of N (params), D (tokens), C (FLOPs) columns (or C alone for a "
                        f"compute-only form); columns present: {', '.join(header)} (use "
                        "n_col=/d_col=/c_col=)")
    index = {h: i for i, h in enumerate(header)}
    lines = list(range(2, len(rows) + 2))
    for i, r in enumerate(rows):
        if len(r) != len(header):
            raise DataError(f"{path}: line {lines[i]} has {len(r)} cells but the header has {len(header)}; "
                            "fix the row or quote cells containing commas")
    notes: list[str] = []
    rows, lines = _apply_where(rows, lines, index, where, header, notes)
    rows, lines = _apply_status(rows, lines, index, header, notes)
    rows, lines = _apply_exclude(rows, lines, index, exclude_col, header, path, notes)
    rows, lines = _apply_duplicates(rows, lines, keep_duplicates, notes)
    if not rows:
        raise DataError(f"{path}: no rows left after filtering; check where=/exclude_col=")
    if cols["budget"] is not None and budget_col is None and all(not r[index[cols["budget"]]].strip()
                                                                for r in rows):
        cols["budget"] = None  # an all-empty budget column (a sweep that is not an IsoFLOP grid)
    nums = {k: _numeric(rows, lines, index[c], c, path) for k, c in cols.items() if c is not None}
    _check_positive(nums, cols, lines, path)
    n, d, c, derived = _complete_ndc(nums.get("n"), nums.get("d"), nums.get("c"))
    notes.extend(derived)
    run_id = _run_ids(rows, index, header, run_id_col)
    table = RunsTable(n_params=n, n_tokens=d, compute_flops=c, loss=nums["loss"], budget=nums.get("budget"),
                      run_id=run_id, unique_tokens=nums.get("unique"), source=str(path),
                      line_numbers=np.array(lines))
    table = _apply_drops(table, rows, index, header, drop_top_loss, drop_where, notes)
    if len(table) < max(1, min_points):
        raise DataError(f"{path}: {len(table)} usable rows, need at least {min_points}")
    notes.append(f"using {len(table)} points from {path.name}")
    log.info("loaded %d runs from %s", len(table), path)
    return replace(table, notes=tuple(notes))


def _apply_where(rows, lines, index, where, header, notes):
    if not where:
        return rows, lines
    for col, value in where.items():
        if col not in index:
            raise DataError(f"where= column {col!r} not found; columns present: {', '.join(header)}")
        keep = [i for i, r in enumerate(rows) if _equal(r[index[col]], str(value))]
        if not keep:
            seen = sorted({r[index[col]] for r in rows})[:6]
            raise DataError(f"no rows with {col} == {value!r}; values present include: {', '.join(seen)}")
        rows, lines = [rows[i] for i in keep], [lines[i] for i in keep]
        notes.append(f"kept rows with {col} == {value}")
    return rows, lines


def _equal(cell: str, value: str) -> bool:
    if cell.strip() == value.strip():
        return True
    try:
        return float(cell) == float(value)
    except ValueError:
        return False


def _apply_status(rows, lines, index, header, notes):
    col = _find(header, None, "status")
    if col is None:
        return rows, lines
    keep = [i for i, r in enumerate(rows) if r[index[col]].strip().lower() in _OK_STATUS]
    if len(keep) < len(rows):
        notes.append(f"dropped {len(rows) - len(keep)} rows whose {col} is not done")
    return [rows[i] for i in keep], [lines[i] for i in keep]


def _apply_exclude(rows, lines, index, exclude_col, header, path, notes):
    if exclude_col is None:
        return rows, lines
    if exclude_col not in index:
        raise DataError(f"exclude column {exclude_col!r} not found; columns present: {', '.join(header)}")
    keep = []
    for i, r in enumerate(rows):
        flag = r[index[exclude_col]].strip().lower()
        if flag not in _TRUE | _FALSE:
            raise DataError(f"{path}: line {lines[i]}: {exclude_col}={flag!r} is not a boolean "
                            "(true/false, 1/0)")
        if flag not in _TRUE:
            keep.append(i)
    notes.append(f"dropped {len(rows) - len(keep)} rows flagged in {exclude_col}")
    return [rows[i] for i in keep], [lines[i] for i in keep]


def _apply_duplicates(rows, lines, keep: bool, notes):
    """Drop (or, with ``keep``, just report) rows equal cell for cell to an earlier row."""
    seen: set[tuple[str, ...]] = set()
    first, repeats = [], []
    for i, r in enumerate(rows):
        key = tuple(c.strip() for c in r)
        (repeats if key in seen else first).append(i)
        seen.add(key)
    if not repeats:
        return rows, lines
    shown = ", ".join(str(lines[i]) for i in repeats[:10]) + (" ..." if len(repeats) > 10 else "")
    if keep:
        notes.append(f"kept {len(repeats)} exact duplicate row(s) (line(s) {shown}) because "
                     "keep_duplicates=True; each copy counts again in the fit and narrows bootstrap "
                     "intervals")
        return rows, lines
    notes.append(f"dropped {len(repeats)} exact duplicate row(s) (line(s) {shown}); keep_duplicates=True "
                 "keeps them")
    return [rows[i] for i in first], [lines[i] for i in first]


def _parse_number(cell: str) -> float:
    try:
        return float(cell)
    except ValueError:
        from scalinglab.units import parse_count

        return parse_count(cell)  # "7B", "1.4T"


def _numeric(rows, lines, j, col, path) -> np.ndarray:
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        try:
            out[i] = _parse_number(r[j].strip())
        except (ValueError, ScalingLabError):
            raise DataError(f"{path}: line {lines[i]}: column {col!r} has non-numeric value {r[j][:40]!r}; "
                            "give plain numbers such as 1.5e9 or 7B") from None
    return out


def _check_positive(nums: dict[str, np.ndarray], cols: dict[str, str | None], lines, path) -> None:
    """Name every row whose mapped value is NaN, inf or <= 0, across all mapped columns."""
    bad = np.zeros(len(lines), dtype=bool)
    which = []
    for key, values in nums.items():
        hit = ~np.isfinite(values) | (values <= 0)
        if hit.any():
            which.append(cols[key])
            bad |= hit
    if bad.any():
        rows = [lines[i] for i in np.flatnonzero(bad)]
        shown = ", ".join(map(str, rows[:10])) + (" ..." if len(rows) > 10 else "")
        raise DataError(f"{path}: column(s) {', '.join(map(repr, which))} have NaN, inf or <= 0 values on "
                        f"line(s) {shown}; remove those rows or exclude them (exclude_col=/drop_where=)")


def _run_ids(rows, index, header, run_id_col):
    if run_id_col is None:
        found = _find(header, None, "run_id")
        cols = [found] if found else []
    else:
        cols = [run_id_col] if isinstance(run_id_col, str) else list(run_id_col)
        for c in cols:
            if c not in index:
                raise DataError(f"run id column {c!r} not found; columns present: {', '.join(header)}")
    if not cols:
        return None
    return np.array(["|".join(r[index[c]].strip() for c in cols) for r in rows], dtype=str)


def _apply_drops(table, rows, index, header, drop_top_loss, drop_where, notes):
    keep = np.ones(len(table), dtype=bool)
    rules = [drop_where] if isinstance(drop_where, str) else list(drop_where or [])
    for rule in rules:
        hit = _rule_mask(rule, rows, index, header, table)
        keep &= ~hit
        notes.append(f"dropped {int(hit.sum())} rows where {rule.strip()}")
    if drop_top_loss:
        k = int(drop_top_loss)
        if k < 0 or k >= int(keep.sum()):
            raise DataError(f"drop_top_loss={k} must be >= 0 and leave at least one row of {int(keep.sum())}")
        candidates = np.flatnonzero(keep)
        worst = candidates[np.argsort(table.loss[candidates])[::-1][:k]]
        keep[worst] = False
        notes.append(f"dropped the {k} highest-loss rows (Besiroglu et al. 2024 rule)")
    return table if keep.all() else table.subset(keep)


_OPS = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
        "==": np.equal, "=": np.equal, "!=": np.not_equal}
_CANONICAL = {"n": "n_params", "d": "n_tokens", "c": "compute_flops", "loss": "loss"}


def _rule_mask(rule: str, rows, index, header, table: RunsTable) -> np.ndarray:
    m = _RULE_RE.match(rule or "")
    if not m:
        raise DataError(f"drop rule {rule!r} is not COLUMN OP VALUE (OP one of > >= < <= == !=), "
                        "e.g. 'loss>5'")
    col, op, value = m.groups()
    lowered = col.lower()
    if lowered in ("n_params", "n_tokens", "compute_flops", "loss") or lowered in _CANONICAL:
        values = getattr(table, _CANONICAL.get(lowered, lowered))
        if values is None:
            raise DataError(f"drop rule {rule!r}: this table has no {col} (only compute and loss)")
    elif col in index:
        try:
            values = np.array([_parse_number(r[index[col]].strip()) for r in rows])
        except (ValueError, ScalingLabError):
            if op not in ("==", "=", "!="):
                raise DataError(f"drop rule {rule!r}: column {col!r} is not numeric; use == or !=") from None
            hit = np.array([_equal(r[index[col]], value) for r in rows])
            return hit if op != "!=" else ~hit
    else:
        raise DataError(f"drop rule {rule!r}: column {col!r} not found; columns present: {', '.join(header)}")
    try:
        threshold = _parse_number(value)
    except (ValueError, ScalingLabError):
        raise DataError(f"drop rule {rule!r}: {value!r} is not a number") from None
    return _OPS[op](values, threshold)
