"""The runs table every approach fits from: one row per training run (or checkpoint).

Parameters N, tokens D, compute C, loss, and optionally an IsoFLOP budget label and a run id. Two of N, D, C
are enough; the third follows from C = 6ND (Kaplan et al. 2020, eq. 2.1; Hoffmann et al. 2022, sec. 3), and
the table's ``notes`` say so. Reading a table from CSV lives in :mod:`scalinglab.laws.runs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from scalinglab.errors import DataError


@dataclass(frozen=True, eq=False)
class RunsTable:
    """Training runs as parallel arrays (one entry per run or checkpoint).

    Attributes
    ----------
    n_params, n_tokens, compute_flops, loss : np.ndarray
        N, D, C (FLOPs) and the final loss, all finite and > 0. N and D are None in a table of C and loss
        alone, which only compute-only forms (``saturating_c``) can fit; see :meth:`require_nd`.
    budget : np.ndarray or None
        IsoFLOP budget label per row (FLOPs) when the data came with one.
    run_id : np.ndarray or None
        Run identifier per row (strings), used to group checkpoints of one training curve (Approach 1).
    unique_tokens : np.ndarray or None
        Unique tokens U behind each run's D (D/U epochs), for the data-constrained law (Muennighoff et al.
        2023).
    notes : tuple of str
        What the loader did (derived columns, dropped rows, points used).
    line_numbers : np.ndarray or None
        CSV line of each row, for error messages.
    """

    n_params: np.ndarray | None
    n_tokens: np.ndarray | None
    compute_flops: np.ndarray
    loss: np.ndarray
    budget: np.ndarray | None = None
    run_id: np.ndarray | None = None
    unique_tokens: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    source: str = ""
    line_numbers: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.loss)
        for name in ("n_params", "n_tokens", "compute_flops", "loss", "budget", "unique_tokens"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=float).copy()
            if arr.shape != (n,):
                raise DataError(f"runs table column {name} has shape {arr.shape}, expected ({n},)")
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise DataError(f"runs table column {name} has non-finite or non-positive values")
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for name in ("run_id", "line_numbers"):
            arr = getattr(self, name)
            if arr is not None:
                arr = np.asarray(arr).copy()
                if arr.shape != (n,):
                    raise DataError(f"runs table column {name} has shape {arr.shape}, expected ({n},)")
                arr.setflags(write=False)
                object.__setattr__(self, name, arr)
        object.__setattr__(self, "notes", tuple(self.notes))

    def __len__(self) -> int:
        return len(self.loss)

    @classmethod
    def from_arrays(cls, *, loss, n_params=None, n_tokens=None, compute_flops=None, budget=None,
                    run_id=None, unique_tokens=None, notes: Sequence[str] = ()) -> RunsTable:
        """Build a table from arrays; two of N, D, C are enough (the third from C = 6ND)."""
        cols = {"n": n_params, "d": n_tokens, "c": compute_flops}
        arrs = {k: None if v is None else np.asarray(v, dtype=float) for k, v in cols.items()}
        n, d, c, derived = _complete_ndc(arrs["n"], arrs["d"], arrs["c"])
        return cls(n_params=n, n_tokens=d, compute_flops=c, loss=np.asarray(loss, dtype=float),
                   budget=budget, run_id=run_id, unique_tokens=unique_tokens, notes=tuple(notes) + derived)

    @property
    def has_nd(self) -> bool:
        """False for a table of compute and loss alone (N and D unknown)."""
        return self.n_params is not None and self.n_tokens is not None

    def require_nd(self, what: str) -> None:
        """Raise a one-line DataError when ``what`` needs N and D but the table has only C and loss."""
        if not self.has_nd:
            src = f"{self.source} has" if self.source else "the runs table has"
            raise DataError(f"{what} needs N (parameters) and D (tokens) per run; {src} only compute and "
                            "loss. Give two of N, D, C, or fit a compute-only form such as saturating_c")

    def subset(self, mask_or_index: np.ndarray, note: str | None = None) -> RunsTable:
        """Rows selected by a boolean mask or an index array (repeats allowed, for the bootstrap)."""
        idx = np.asarray(mask_or_index)

        def pick(a):
            return None if a is None else a[idx]

        notes = self.notes + ((note,) if note else ())
        return replace(self, n_params=pick(self.n_params), n_tokens=pick(self.n_tokens),
                       compute_flops=self.compute_flops[idx], loss=self.loss[idx], budget=pick(self.budget),
                       run_id=pick(self.run_id), unique_tokens=pick(self.unique_tokens),
                       line_numbers=pick(self.line_numbers), notes=notes)

    def concat(self, other: RunsTable) -> RunsTable:
        """This table followed by ``other`` (e.g. to duplicate data)."""
        def cat(a, b):
            return None if a is None or b is None else np.concatenate([a, b])

        return replace(self, n_params=cat(self.n_params, other.n_params),
                       n_tokens=cat(self.n_tokens, other.n_tokens),
                       compute_flops=cat(self.compute_flops, other.compute_flops),
                       loss=cat(self.loss, other.loss), budget=cat(self.budget, other.budget),
                       run_id=cat(self.run_id, other.run_id),
                       unique_tokens=cat(self.unique_tokens, other.unique_tokens),
                       line_numbers=cat(self.line_numbers, other.line_numbers))

    def budget_labels(self, tol_dex: float = 0.1) -> np.ndarray:
        """IsoFLOP budget of each row: the budget column, else C grouped where log10 C gaps are < ``tol_dex``.

        Grouped budgets are labelled by the geometric mean of their C values (extracted data such as
        Epoch AI's reconstruction of Hoffmann et al. scatter around 9e18-1e19 for the 1e19 budget); a group
        whose C values are all equal keeps that exact value.
        """
        if self.budget is not None:
            return self.budget.copy()
        return group_by_log_gap(self.compute_flops, tol_dex)

    def to_dict(self) -> dict:
        """Columns as lists (JSON-ready)."""
        out = {"n_params": None if self.n_params is None else self.n_params.tolist(),
               "n_tokens": None if self.n_tokens is None else self.n_tokens.tolist(),
               "compute_flops": self.compute_flops.tolist(), "loss": self.loss.tolist(),
               "notes": list(self.notes), "source": self.source, "n_points": len(self)}
        if self.budget is not None:
            out["budget"] = self.budget.tolist()
        if self.run_id is not None:
            out["run_id"] = [str(r) for r in self.run_id]
        if self.unique_tokens is not None:
            out["unique_tokens"] = self.unique_tokens.tolist()
        return out


C_ONLY_NOTE = ("only compute and loss given: N and D unknown, so only compute-only forms (saturating_c) "
               "can fit")


def group_by_log_gap(values: np.ndarray, tol_dex: float = 0.1) -> np.ndarray:
    """Label each value by the geometric mean of its cluster; clusters split where sorted log10 gaps > tol."""
    logs = np.log10(np.asarray(values, dtype=float))
    order = np.argsort(logs)
    cluster = np.concatenate([[0], np.cumsum(np.diff(logs[order]) > tol_dex)])
    labels = np.empty(len(logs))
    for k in np.unique(cluster):
        members = order[cluster == k]
        vals = np.asarray(values, dtype=float)[members]
        # exact budget values (a sweep's own labels) stay exact; scattered ones get their geometric mean
        labels[members] = vals[0] if np.all(vals == vals[0]) else float(10 ** np.mean(logs[members]))
    return labels


def _complete_ndc(n, d, c):
    """Fill the missing one of N, D, C from C = 6ND; return (n, d, c, notes). C alone leaves N, D as None."""
    present = [k for k, v in (("N", n), ("D", d), ("C", c)) if v is not None]
    if present == ["C"]:
        return None, None, c, (C_ONLY_NOTE,)
    if len(present) < 2:
        raise DataError(f"need two of N (params), D (tokens), C (FLOPs), or C alone for a compute-only form "
                        f"such as saturating_c; got only {present or 'none'}")
    if c is None:
        return n, d, 6.0 * n * d, ("C derived as 6*N*D",)
    if d is None:
        return n, c / (6.0 * n), c, ("D derived as C/(6*N)",)
    if n is None:
        return c / (6.0 * d), d, c, ("N derived as C/(6*D)",)
    return n, d, c, ()
