"""The records a study hands on: :class:`StudyAnalysis` and its parts, frozen, read by attribute.

``report/`` renders a :class:`StudyAnalysis` and ``cli/`` prints its headline numbers; neither imports this
module (``report`` sits below ``study``), they read the attributes named here. ``fit.json`` is
``StudyAnalysis.to_dict()``; :func:`load_analysis` reads it back (also the files written before these records
existed, whose optional keys may be absent), so ``scalinglab report fit.json`` needs neither the runs nor the
laws.

The live fit objects (``Approach2Summary.fit``, ``Approach3Summary.fit``, ``StudyAnalysis.law``) are kept for
callers of :func:`scalinglab.study.analyze`; they are not serialised, so they are ``None`` after a load.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scalinglab.errors import ReportError

FIT_JSON_VERSION = 1  # stored under "report_version", the key fit.json has always used
FAILED_STATUSES = ("failed", "diverged")


def _floats(xs: Any) -> tuple[float, ...] | None:
    return None if xs is None else tuple(float(x) for x in xs)


def _pair(xs: Any) -> tuple | None:
    return None if not xs else tuple(xs)


def _list(xs: tuple | None) -> list | None:
    return None if xs is None else list(xs)


@dataclass(frozen=True, kw_only=True)
class RunRow:
    """One run of the sweep as the study saw it (loss only for ``done`` runs)."""

    run_id: str
    n_params: float | None = None
    n_tokens: float | None = None
    compute_flops: float | None = None
    loss: float | None = None
    budget: float | None = None
    status: str | None = None
    error: str | None = None
    attempts: int | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping) -> RunRow:
        return cls(**{k: d.get(k) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class ExcludedRun:
    """A run left out of every fit, and why."""

    run_id: str
    status: str
    reason: str | None


@dataclass(frozen=True, kw_only=True)
class Vertex:
    """One budget's IsoFLOP minimum (Hoffmann et al. 2022, Approach 2), with a 95% interval on N_opt."""

    budget: float
    n_opt: float
    d_opt: float
    loss: float | None = None
    n_points: int | None = None
    extrapolated: bool = False
    n_opt_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        return {"budget": self.budget, "n_opt": self.n_opt, "d_opt": self.d_opt, "loss": self.loss,
                "n_points": self.n_points, "extrapolated": self.extrapolated,
                "n_opt_ci": _list(self.n_opt_ci)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Vertex:
        return cls(budget=d["budget"], n_opt=d["n_opt"], d_opt=d["d_opt"], loss=d.get("loss"),
                   n_points=d.get("n_points"), extrapolated=bool(d.get("extrapolated", False)),
                   n_opt_ci=_pair(d.get("n_opt_ci")))


@dataclass(frozen=True, kw_only=True)
class AllocationCurve:
    """N_opt(C), D_opt(C) on a compute grid, with bootstrap bands when there are samples."""

    compute: tuple[float, ...]
    n_fit: tuple[float, ...]
    d_fit: tuple[float, ...]
    n_lo: tuple[float, ...] | None = None
    n_hi: tuple[float, ...] | None = None
    d_lo: tuple[float, ...] | None = None
    d_hi: tuple[float, ...] | None = None

    def to_dict(self) -> dict:
        return {k: _list(getattr(self, k)) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: Mapping) -> AllocationCurve:
        return cls(**{k: _floats(d.get(k)) for k in cls.__dataclass_fields__})


@dataclass(frozen=True, kw_only=True)
class ReferenceCurve:
    """A published law's N_opt(C), D_opt(C) on the same grid (for the allocation figure)."""

    compute: tuple[float, ...]
    n_opt: tuple[float, ...]
    d_opt: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"compute": list(self.compute), "n_opt": list(self.n_opt), "d_opt": list(self.d_opt)}

    @classmethod
    def from_dict(cls, d: Mapping) -> ReferenceCurve:
        return cls(compute=_floats(d["compute"]), n_opt=_floats(d["n_opt"]), d_opt=_floats(d["d_opt"]))


@dataclass(frozen=True, kw_only=True)
class Approach2Summary:
    """Approach 2: the exponents a, b of N_opt ∝ C^a, D_opt ∝ C^b, their CIs, the minima and the curve."""

    a: float
    b: float
    n_coef: float | None = None
    d_coef: float | None = None
    notes: tuple[str, ...] = ()
    a_ci: tuple[float, float] | None = None
    b_ci: tuple[float, float] | None = None
    bootstrap: Mapping[str, Any] | None = None  # n_resamples, n_failed, notes
    vertices: tuple[Vertex, ...] = ()
    curve: AllocationCurve | None = None
    fit: Any = field(default=None, compare=False, repr=False)  # the laws.approach2.Approach2Result

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "n_coef": self.n_coef, "d_coef": self.d_coef,
                "notes": list(self.notes),
                "a_ci": _list(self.a_ci), "b_ci": _list(self.b_ci), "bootstrap": self.bootstrap,
                "vertices": [v.to_dict() for v in self.vertices],
                "curve": self.curve.to_dict() if self.curve else None}

    @classmethod
    def from_dict(cls, d: Mapping) -> Approach2Summary:
        return cls(a=d.get("a"), b=d.get("b"), n_coef=d.get("n_coef"), d_coef=d.get("d_coef"),
                   notes=tuple(d.get("notes") or ()), a_ci=_pair(d.get("a_ci")), b_ci=_pair(d.get("b_ci")),
                   bootstrap=d.get("bootstrap"),
                   vertices=tuple(Vertex.from_dict(v) for v in d.get("vertices") or ()),
                   curve=AllocationCurve.from_dict(d["curve"]) if d.get("curve") else None)


@dataclass(frozen=True, kw_only=True)
class Approach3Summary:
    """Approach 3: the parametric fit L = E + A/N^α + B/D^β, its CIs and a = β/(α+β)."""

    params: Mapping[str, float]
    n_points: int | None = None
    status: str | None = None
    warnings: tuple[str, ...] = ()
    a: float | None = None
    ci: Mapping[str, tuple[float, float]] | None = None
    a_ci: tuple[float, float] | None = None
    fit: Any = field(default=None, compare=False, repr=False)  # the laws.result.FitResult

    def to_dict(self) -> dict:
        ci = None if self.ci is None else {k: list(v) for k, v in self.ci.items()}
        return {"params": dict(self.params), "n_points": self.n_points, "status": self.status,
                "warnings": list(self.warnings), "a": self.a, "ci": ci, "a_ci": _list(self.a_ci)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Approach3Summary:
        ci = d.get("ci")
        return cls(params=dict(d.get("params") or {}), n_points=d.get("n_points"), status=d.get("status"),
                   warnings=tuple(d.get("warnings") or ()), a=d.get("a"), a_ci=_pair(d.get("a_ci")),
                   ci=None if ci is None else {k: tuple(v) for k, v in ci.items()})


@dataclass(frozen=True, kw_only=True)
class BacktestRow:
    """One held-out quantity: actual, predicted, relative error (all None when that fit failed)."""

    label: str
    actual: float | None = None
    predicted: float | None = None
    rel_error: float | None = None

    def to_dict(self) -> dict:
        return {"label": self.label, "actual": self.actual, "predicted": self.predicted,
                "rel_error": self.rel_error}

    @classmethod
    def from_dict(cls, d: Mapping) -> BacktestRow:
        return cls(label=str(d.get("label", "")), actual=d.get("actual"), predicted=d.get("predicted"),
                   rel_error=d.get("rel_error"))


@dataclass(frozen=True, kw_only=True)
class Backtest:
    """Fit on the budgets below the top one, predict the top one."""

    description: str
    rows: tuple[BacktestRow, ...] = ()

    def to_dict(self) -> dict:
        return {"description": self.description, "rows": [r.to_dict() for r in self.rows]}

    @classmethod
    def from_dict(cls, d: Mapping) -> Backtest:
        return cls(description=str(d.get("description", "")),
                   rows=tuple(BacktestRow.from_dict(r) for r in d.get("rows") or ()))


@dataclass(frozen=True, kw_only=True)
class NextBudgetPlan:
    """What 10× the top budget buys under the sweep's law; ``html`` is the planner's own (escaped) section."""

    description: str | None = None
    rows: tuple[tuple[str, str], ...] = ()
    html: str | None = None
    planner_error: str | None = None
    # (level, "CI lo – hi", "PI lo – hi") of the predicted loss there (laws/intervals.py), when bootstrapped
    interval_rows: tuple[tuple[str, str, str], ...] = ()

    def to_dict(self) -> dict:
        return {"description": self.description, "rows": [list(r) for r in self.rows], "html": self.html,
                "planner_error": self.planner_error, "interval_rows": [list(r) for r in self.interval_rows]}

    @classmethod
    def from_dict(cls, d: Mapping) -> NextBudgetPlan:
        return cls(description=d.get("description"), rows=tuple(tuple(r) for r in d.get("rows") or ()),
                   html=d.get("html"), planner_error=d.get("planner_error"),
                   interval_rows=tuple(tuple(r) for r in d.get("interval_rows") or ()))


def _opt(cls, d: Mapping, key: str):
    return cls.from_dict(d[key]) if d.get(key) else None


@dataclass(frozen=True, kw_only=True)
class StudyAnalysis:
    """Everything a study concluded from one sweep folder: what ``report/`` renders and ``cli/`` prints.

    Attributes
    ----------
    title, created : str
        The page's title and the ISO time of the analysis.
    runs : tuple of RunRow
        Every run of the registry (failed and diverged ones too; see :attr:`excluded`).
    curves : dict
        ``run_id -> {"tokens": [...], "loss": [...]}``, each run's training loss curve (thinned).
    approach2, approach3 : Approach2Summary, Approach3Summary or None
        The fits (None when that step could not run; the reason is in ``errors``).
    backtest : Backtest or None
    plan : NextBudgetPlan or None
        The next budget (10× the top one) under the sweep's law.
    references : dict
        ``label -> ReferenceCurve`` of published laws on the allocation figure's grid.
    errors : dict
        ``step -> message`` for each step that could not be carried out.
    notes : tuple of str
    law : laws.law.Law or None
        The sweep's own law (allocation from Approach 2, loss from Approach 3) that planned the next budget.
    """

    title: str
    runs: tuple[RunRow, ...] = ()
    curves: Mapping[str, Mapping[str, list]] = field(default_factory=dict)
    created: str = ""
    approach2: Approach2Summary | None = None
    approach3: Approach3Summary | None = None
    backtest: Backtest | None = None
    plan: NextBudgetPlan | None = None
    references: Mapping[str, ReferenceCurve] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    law: Any = field(default=None, compare=False, repr=False)

    @property
    def excluded(self) -> tuple[ExcludedRun, ...]:
        """Runs left out of every fit (failed or diverged), with the error the registry recorded."""
        return tuple(ExcludedRun(run_id=r.run_id, status=str(r.status), reason=r.error)
                     for r in self.runs if r.status in FAILED_STATUSES)

    @property
    def statuses(self) -> dict[str, int]:
        """Run count per status, in the order the statuses first appear."""
        counts: dict[str, int] = {}
        for r in self.runs:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    def to_dict(self) -> dict:
        """The ``fit.json`` layout (``report_version``, ``title``, ``runs``, ``curves``, ``analysis``,
        ``created``)."""
        analysis = {"errors": dict(self.errors), "notes": list(self.notes),
                    "approach2": self.approach2.to_dict() if self.approach2 else None,
                    "approach3": self.approach3.to_dict() if self.approach3 else None,
                    "backtest": self.backtest.to_dict() if self.backtest else None,
                    "plan": self.plan.to_dict() if self.plan else None,
                    "references": {k: v.to_dict() for k, v in self.references.items()}}
        return {"report_version": FIT_JSON_VERSION, "title": self.title,
                "runs": [r.to_dict() for r in self.runs],
                "curves": dict(self.curves), "analysis": analysis, "created": self.created}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StudyAnalysis:
        if not isinstance(d, Mapping) or "runs" not in d or "analysis" not in d:
            raise ReportError("not a scalinglab fit/report JSON (needs 'runs' and 'analysis'); pass a sweep "
                              "folder or the fit.json a sweep wrote")
        a = d["analysis"]
        return cls(title=str(d.get("title", "scalinglab sweep")),
                   runs=tuple(RunRow.from_dict(r) for r in d["runs"]),
                   curves=dict(d.get("curves") or {}), created=str(d.get("created", "")),
                   approach2=_opt(Approach2Summary, a, "approach2"),
                   approach3=_opt(Approach3Summary, a, "approach3"),
                   backtest=_opt(Backtest, a, "backtest"), plan=_opt(NextBudgetPlan, a, "plan"),
                   references={k: ReferenceCurve.from_dict(v)
                               for k, v in (a.get("references") or {}).items()},
                   errors=dict(a.get("errors") or {}), notes=tuple(a.get("notes") or ()))


def load_analysis(path: str | Path) -> StudyAnalysis:
    """Read a ``fit.json`` written by a study (``StudyAnalysis.to_dict()``)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ReportError(f"no such file {path}; pass a sweep folder or its fit.json") from err
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ReportError(f"{path} is not valid JSON ({err}); pass a sweep folder or its fit.json") from err
    return StudyAnalysis.from_dict(d)
