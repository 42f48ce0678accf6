"""The IsoFLOP study as one call: design → register → execute → fit → report (and resume after a crash).

A sweep folder holds ``registry.sqlite`` (the record of every run), ``runs/<run_id>/`` (each run's directory),
``runs.csv`` (the export ``scalinglab fit`` reads), ``fit.json`` (everything the report shows) and
``report.html``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import RegistryError, ScalingLabError
from scalinglab.report.page import write_report
from scalinglab.study.analysis import REPORT_HTML, analyze
from scalinglab.study.prior import design_sweep
from scalinglab.study.record import StudyAnalysis
from scalinglab.sweep.design import PlannedRun, SweepSpec
from scalinglab.sweep.executors import ExecutorConfig, ProgressFn, execute
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry, config_hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep run/resume produced."""

    sweep_dir: Path
    statuses: dict[str, int]
    report_path: Path | None
    data: StudyAnalysis | None

    def to_dict(self) -> dict:
        return {"sweep_dir": str(self.sweep_dir), "statuses": self.statuses,
                "report": str(self.report_path) if self.report_path else None}


def sweep_id_for(spec: SweepSpec) -> str:
    return "sweep-" + config_hash(spec.to_dict())[:10]


def register_sweep(sweep_dir: str | Path, spec: SweepSpec,
                   plan: list[PlannedRun] | None = None) -> list[PlannedRun]:
    """Record the sweep and queue its runs (idempotent: runs already present, by config hash, are kept); the
    plan is designed here, with the spec's prior law resolved, unless given."""
    sweep_dir = Path(sweep_dir)
    plan = design_sweep(spec) if plan is None else plan
    sid = sweep_id_for(spec)
    with Registry.open(sweep_dir / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep(sid, spec.to_dict())
        added = 0
        for i, run in enumerate(plan):
            added += reg.add_run(sid, run.run_id, run.train_config(spec), budget=run.budget,
                                 n_params=run.n_params, n_tokens=run.n_tokens,
                                 compute_flops=run.compute_flops,
                                 parent_run_id=run.parent_run_id, position=i)
    log.info("sweep %s: %d runs planned, %d newly queued", sid, len(plan), added)
    return plan


def load_spec(sweep_dir: str | Path) -> SweepSpec:
    """The spec of the sweep held in ``sweep_dir`` (for ``sweep resume``)."""
    with Registry.open(Path(sweep_dir) / REGISTRY_FILENAME, create=False) as reg:
        sweep = reg.sweep()
    if sweep is None:
        raise RegistryError(f"{sweep_dir} holds no sweep yet; start one with `scalinglab sweep run --out "
                            f"{sweep_dir}`")
    try:
        return SweepSpec.from_dict(sweep["spec"])
    except ScalingLabError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a spec from another version
        raise RegistryError(f"{sweep_dir} holds a sweep whose spec this scalinglab cannot read "
                            f"({type(err).__name__}: {err}); it was left untouched - use the scalinglab "
                            "version that wrote it") from err


def finish(sweep_dir: str | Path, *, n_boot: int = 200, seed: int = 0,
           title: str | None = None) -> tuple[StudyAnalysis, Path]:
    """Fit, backtest, plan and write ``report.html``; returns the analysis and the page's path."""
    data = analyze(sweep_dir, n_boot=n_boot, seed=seed, title=title)
    return data, write_report(data, Path(sweep_dir) / REPORT_HTML)


def run_study(sweep_dir: str | Path, spec: SweepSpec | None = None, *,
              executor: ExecutorConfig | None = None,
              progress: ProgressFn | None = None, n_boot: int = 200, analyze: bool = True,
              title: str | None = None) -> SweepOutcome:
    """Run (``spec`` given) or resume (``spec=None``) a sweep in ``sweep_dir``, then fit and report."""
    sweep_dir = Path(sweep_dir)
    if spec is not None:
        register_sweep(sweep_dir, spec)
    else:
        load_spec(sweep_dir)  # refuses a folder without a sweep
    execute(sweep_dir, executor or ExecutorConfig(), progress=progress)
    with Registry.open(sweep_dir / REGISTRY_FILENAME, create=False) as reg:
        statuses = reg.counts()
    data, report = finish(sweep_dir, n_boot=n_boot, title=title) if analyze else (None, None)
    return SweepOutcome(sweep_dir=sweep_dir, statuses=statuses, report_path=report, data=data)
