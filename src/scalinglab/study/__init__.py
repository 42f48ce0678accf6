"""scalinglab.study — the one layer that crosses the steps of the scaling loop.

It designs a sweep with a prior law resolved from ``laws`` (:func:`design_sweep`), runs it with ``sweep``'s
executors (:func:`run_study`), fits Approaches 2 and 3 with bootstrap CIs, backtests on the top budget and
plans the next budget with ``plan`` (:func:`analyze`), and returns all of it as one frozen
:class:`StudyAnalysis` that ``report/`` renders and ``cli/`` prints by attribute. Torch-free (training runs in
the executors' workers). Names are imported on first use, so ``scalinglab report fit.json`` loads only the
records.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FIT_JSON": "analysis", "REPORT_HTML": "analysis", "RUNS_CSV": "analysis", "analyze": "analysis",
    "read_curve": "analysis",
    "run_demo": "demo", "setup_demo": "demo", "demo_spec": "demo",
    "design_sweep": "prior", "prior_for": "prior", "prior_n_opt": "prior",
    "AllocationCurve": "record", "Approach2Summary": "record", "Approach3Summary": "record",
    "Backtest": "record",
    "BacktestRow": "record", "ExcludedRun": "record", "NextBudgetPlan": "record", "ReferenceCurve": "record",
    "RunRow": "record", "StudyAnalysis": "record", "Vertex": "record", "load_analysis": "record",
    "SweepOutcome": "run", "finish": "run", "load_spec": "run", "register_sweep": "run", "run_study": "run",
    "sweep_id_for": "run",
}
__all__ = [
    "FIT_JSON",
    "REPORT_HTML",
    "RUNS_CSV",
    "AllocationCurve",
    "Approach2Summary",
    "Approach3Summary",
    "Backtest",
    "BacktestRow",
    "ExcludedRun",
    "NextBudgetPlan",
    "ReferenceCurve",
    "RunRow",
    "StudyAnalysis",
    "SweepOutcome",
    "Vertex",
    "analyze",
    "demo_spec",
    "design_sweep",
    "finish",
    "load_analysis",
    "load_spec",
    "prior_for",
    "prior_n_opt",
    "read_curve",
    "register_sweep",
    "run_demo",
    "run_study",
    "setup_demo",
    "sweep_id_for",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'scalinglab.study' has no attribute {name!r}")
    return getattr(importlib.import_module(f"scalinglab.study.{_EXPORTS[name]}"), name)
