"""After the sweep: fit Approaches 2 and 3 with bootstrap CIs, backtest on the top budget, plan 10× more
compute, and return it all as one :class:`~scalinglab.study.record.StudyAnalysis`.

Only ``done`` runs enter a fit; failed and diverged runs are listed with their reasons and a note. Each step
that cannot be carried out (too few budgets, a fit that fails) is recorded under ``errors`` instead of
stopping the others. Torch-free.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.fileio import atomic_write_text, jsonable
from scalinglab.study.record import (
    FAILED_STATUSES,
    AllocationCurve,
    Approach2Summary,
    Approach3Summary,
    Backtest,
    BacktestRow,
    NextBudgetPlan,
    ReferenceCurve,
    RunRow,
    StudyAnalysis,
    Vertex,
)
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

log = logging.getLogger(__name__)

RUNS_CSV = "runs.csv"
FIT_JSON = "fit.json"
REPORT_HTML = "report.html"
REFERENCE_LAWS = (("chinchilla", "Chinchilla (Hoffmann et al. 2022)"),
                  ("epoch2024", "Epoch (Besiroglu et al. 2024)"))


def _runs_table(csv_path: Path):
    from scalinglab.laws.runs import load_runs_csv

    return load_runs_csv(csv_path)


def _approach2(runs, n_boot: int, seed: int) -> Approach2Summary:
    from scalinglab.laws.approach2 import fit_approach2

    fit = fit_approach2(runs, skip_bad_budgets=True)
    out: dict[str, Any] = {}
    boot = None
    notes = tuple(fit.notes)
    if n_boot and len(fit.vertices) >= 3:
        boot, why = _bootstrap_a2(runs, n_boot, seed)
        notes += (why,) if why else ()
    if boot is not None:
        out["a_ci"], out["b_ci"] = boot.interval("a"), boot.interval("b")
        out["bootstrap"] = {"n_resamples": boot.n_resamples, "n_failed": boot.n_failed,
                            "notes": list(boot.notes)}
    return Approach2Summary(a=fit.a, b=fit.b, n_coef=fit.n_law.coef, d_coef=fit.d_law.coef,
                            notes=notes,
                            vertices=tuple(_vertex(v, boot) for v in fit.vertices), curve=_curve(fit, boot),
                            fit=fit, **out)


def _bootstrap_a2(runs, n_boot: int, seed: int):
    """(the residual bootstrap, None), or (None, why) for a sweep of 3 sizes per budget: a parabola through
    three points leaves no residual, and every resample of its runs with 3 distinct sizes is the same three
    runs, so a bootstrap interval would have zero width — no interval is honest."""
    from scalinglab.errors import DataError
    from scalinglab.laws.bootstrap import bootstrap_approach2

    try:
        return bootstrap_approach2(runs, n_resamples=n_boot, seed=seed, skip_bad_budgets=True), None
    except DataError as err:
        if "needs a budget with >= 4 sizes" not in str(err):
            raise
    return None, ("no bootstrap interval: no budget has >= 4 sizes (3 points fit a parabola exactly, so "
                  "neither residuals nor resampled runs say how far its vertex could move)")


def _curve(fit, boot) -> AllocationCurve:
    """N_opt, D_opt on a grid from 2× below the lowest budget to 16× above the top one (the next-budget
    plan)."""
    budgets = [v.budget for v in fit.vertices]
    grid = np.logspace(math.log10(min(budgets)) - 0.3, math.log10(max(budgets)) + 1.2, 40)
    bands: dict[str, Any] = {}
    if boot is not None:
        at = [boot.at_compute(c) for c in grid]
        for key in ("n", "d"):
            bands[f"{key}_lo"] = [a[f"{key}_opt"]["lo"] for a in at]
            bands[f"{key}_hi"] = [a[f"{key}_opt"]["hi"] for a in at]
    return AllocationCurve(compute=tuple(grid.tolist()), n_fit=tuple(float(fit.n_opt(c)) for c in grid),
                           d_fit=tuple(float(fit.d_opt(c)) for c in grid),
                           **{k: tuple(v) for k, v in bands.items()})


def _vertex(v, boot) -> Vertex:
    key = f"n_opt[{v.budget:.4g}]"
    if boot is not None and key in boot.samples:
        ci = boot.interval(key)
    else:
        lo, hi = v.n_interval()
        ci = (lo, hi) if math.isfinite(lo) else None
    return Vertex(budget=v.budget, n_opt=v.n_opt, d_opt=v.d_opt, loss=v.loss_opt, n_points=v.n_points,
                  extrapolated=bool(v.extrapolated), n_opt_ci=ci)


def _approach3(runs, n_boot: int, seed: int) -> Approach3Summary:
    from scalinglab.laws.approach3 import fit_approach3, variables_for
    from scalinglab.laws.bootstrap import bootstrap_approach3
    from scalinglab.laws.intervals import residual_sd_of_fit

    fit = fit_approach3(runs)
    fit = replace(fit, residual_sd=residual_sd_of_fit(fit, variables_for(fit.form, runs), runs.loss))
    p = dict(fit.params)
    out: dict[str, Any] = {}
    if n_boot:
        boot = bootstrap_approach3(runs, n_resamples=n_boot, seed=seed, point=fit)
        fit = boot.fit  # with its samples: the plan's loss intervals come from them
        out["ci"] = {k: boot.interval(k) for k in p if k in boot.samples}
        s = boot.samples
        if "alpha" in s and "beta" in s:
            a = s["beta"] / (s["alpha"] + s["beta"])
            a = a[np.isfinite(a)]
            out["a_ci"] = (float(np.quantile(a, 0.025)), float(np.quantile(a, 0.975))) if len(a) else None
    # a = β/(α+β): the exponent of N_opt ∝ C^a implied by the joint fit (Hoffmann et al. 2022, eq. 4).
    return Approach3Summary(params=p, n_points=fit.n_points, status=fit.status, warnings=tuple(fit.warnings),
                            a=p["beta"] / (p["alpha"] + p["beta"]), fit=fit, **out)


def _backtest(runs, approach2: Approach2Summary | None) -> Backtest:
    """Fit on all budgets but the top one, predict the top budget's minimum (Approach 2) and its runs' losses
    (Approach 3)."""
    from scalinglab.laws.approach2 import fit_approach2
    from scalinglab.laws.approach3 import fit_approach3

    budgets = np.asarray(runs.budget if runs.budget is not None else runs.compute_flops, float)
    top = budgets.max()
    below = runs.subset(budgets < top * 0.9, note="backtest: budgets below the top one")
    held = runs.subset(budgets >= top * 0.9)
    rows = []
    top_vertex = next((v for v in (approach2.vertices if approach2 else ()) if v.budget >= top * 0.9), None)
    a2 = fit_approach2(below, skip_bad_budgets=True)
    if top_vertex is not None:
        pred = float(a2.n_opt(top_vertex.budget))
        rows.append(BacktestRow(label=f"N_opt at C = {top:.3g} (Approach 2)", actual=top_vertex.n_opt,
                                predicted=pred, rel_error=pred / top_vertex.n_opt - 1))
    try:
        a3 = fit_approach3(below)
        pred = np.asarray(a3.predict(n_params=held.n_params, n_tokens=held.n_tokens), float)
        for i in range(len(held)):
            label = f"loss of N = {held.n_params[i]:.3g} at C = {top:.3g} (Approach 3)"
            rows.append(BacktestRow(label=label, actual=float(held.loss[i]), predicted=float(pred[i]),
                                    rel_error=float(pred[i] / held.loss[i] - 1)))
    except Exception as err:  # noqa: BLE001 - recorded, Approach 2 rows still shown
        rows.append(BacktestRow(label=f"Approach 3 backtest failed: {err}"))
    return Backtest(description=f"Fitted on the {len(below)} runs below C = {top:.3g}; predicting the "
                                f"{len(held)} runs of the top budget.", rows=tuple(rows))


_SWEEP_LAW_NAME = "this sweep (Approach 2 allocation)"
# The planner prints "name (source)"; without a source the page showed empty parentheses.
_SWEEP_LAW_SOURCE = ("N_opt, D_opt power laws fitted to this sweep's IsoFLOP minima; "
                     "loss from its Approach 3 fit")


def _sweep_law(a2_fit, a3_fit):
    """This sweep's law: allocation from its Approach 2 fit, loss from its Approach 3 fit when that succeeded
    (Hoffmann et al. 2022, §3.2 and §3.3); the Approach 2 fit alone (allocation only) otherwise."""
    from scalinglab.laws.law import CombinedLaw

    if a3_fit is None:
        return a2_fit
    return CombinedLaw(allocation_law=a2_fit, loss_law=a3_fit, name=_SWEEP_LAW_NAME, source=_SWEEP_LAW_SOURCE)


def _interval_rows(interval_law, alloc) -> tuple[tuple[str, str, str], ...]:
    """CI and PI of the Approach 3 loss at the planned N, D (laws/intervals.py); () without samples."""
    from scalinglab.laws.intervals import has_intervals, loss_intervals

    if interval_law is None or not has_intervals(interval_law):
        return ()
    li = loss_intervals(interval_law, alloc.n_params, alloc.n_tokens)
    return tuple((f"{round(100 * p.level)}%", f"{p.ci[0]:.4f} – {p.ci[1]:.4f}",
                  "-" if p.pi is None else f"{p.pi[0]:.4f} – {p.pi[1]:.4f}") for p in li.intervals)


def _plan_next(law, top_budget: float, seq_len: int | None = None, interval_law=None) -> NextBudgetPlan:
    """What 10× the top budget buys under the fitted law (and the planner's section when it can plan it)."""
    c = 10 * top_budget
    alloc = law.optimal_allocation(c)
    intervals = _interval_rows(interval_law, alloc) if alloc.loss is not None else ()
    rows = [("compute (FLOPs)", f"{c:.3g}"), ("N_opt (parameters)", f"{alloc.n_params:.3g}"),
            ("D_opt (tokens)", f"{alloc.n_tokens:.3g}"),
            ("tokens per parameter", f"{alloc.tokens_per_param:.3g}")]
    if alloc.loss is not None:
        rows.append(("predicted loss (Approach 3 law at that N, D)", f"{alloc.loss:.4g}"))
    desc = f"Extrapolating the fitted law to 10× the top budget ({top_budget:.3g} → {c:.3g} FLOPs)."
    try:
        from scalinglab.plan import make_plan, report_section

        opts = {"seq_len": seq_len} if seq_len else {}
        html = report_section(make_plan(c, law=law, vocab_size=257, **opts))
    except Exception as err:  # noqa: BLE001 - the planner's section is optional; the table above stands alone
        log.info("planner section unavailable: %s", err)
        return NextBudgetPlan(description=desc, rows=tuple(rows),
                              planner_error=f"{type(err).__name__}: {err}", interval_rows=intervals)
    return NextBudgetPlan(description=desc, rows=tuple(rows), html=html, interval_rows=intervals)


def _references(curve: AllocationCurve | None) -> dict[str, ReferenceCurve]:
    from scalinglab.laws.presets import get_law

    if curve is None or not curve.compute:
        return {}
    out = {}
    for name, label in REFERENCE_LAWS:
        law = get_law(name)
        allocs = [law.optimal_allocation(c) for c in curve.compute]
        out[label] = ReferenceCurve(compute=curve.compute, n_opt=tuple(a.n_params for a in allocs),
                                    d_opt=tuple(a.n_tokens for a in allocs))
    return out


def read_curve(run_dir: Path, max_points: int = 200) -> dict:
    """Tokens and training loss from a run's metrics.jsonl (thinned to ``max_points``)."""
    tokens, loss = [], []
    try:
        with open(run_dir / "metrics.jsonl", encoding="utf-8") as fh:
            for line in fh:
                try:
                    m = json.loads(line)
                except ValueError:
                    continue  # a line cut by a crash
                has_point = m.get("loss") is not None and m.get("tokens") is not None
                if has_point and math.isfinite(float(m["loss"])):
                    tokens.append(float(m["tokens"]))
                    loss.append(float(m["loss"]))
    except OSError:
        return {"tokens": [], "loss": []}
    step = max(1, len(tokens) // max_points)
    return {"tokens": tokens[::step], "loss": loss[::step]}


def _run_rows(reg: Registry) -> tuple[RunRow, ...]:
    return tuple(RunRow(run_id=r.run_id, n_params=r.n_params, n_tokens=r.n_tokens,
                        compute_flops=r.compute_flops,
                        loss=r.loss if r.status == "done" else None, budget=r.budget, status=r.status,
                        error=r.error, attempts=r.attempts) for r in reg.runs())


def _step(errors: dict, name: str, fn, *args):
    try:
        return fn(*args)
    except Exception as err:  # noqa: BLE001 - every step reports its failure in the page instead of stopping
        log.info("%s not available: %s", name, err)
        errors[name] = f"{type(err).__name__}: {err}"
        return None


def _exclusion_note(rows: tuple[RunRow, ...]) -> list[str]:
    bad = [r for r in rows if r.status in FAILED_STATUSES]
    if not bad:
        return []
    return [f"{len(bad)} failed/diverged run(s) excluded from every fit: "
            + ", ".join(f"{r.run_id} ({r.status})" for r in bad)]


def _fit_all(csv_path: Path, rows: tuple[RunRow, ...], seq_len: int | None, n_boot: int, seed: int) -> dict:
    """The fits, backtest, next-budget plan and reference curves (the fields of StudyAnalysis they fill)."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {"errors": errors, "notes": _exclusion_note(rows)}
    runs = _step(errors, "runs table", _runs_table, csv_path)
    if runs is None:
        return out
    a2 = out["approach2"] = _step(errors, "Approach 2", _approach2, runs, n_boot, seed)
    out["notes"] += [f"Approach 2: {n}" for n in (a2.notes if a2 else ()) if not n.startswith("using ")]
    a3 = out["approach3"] = _step(errors, "Approach 3", _approach3, runs, n_boot, seed)
    out["backtest"] = _step(errors, "backtest", _backtest, runs, a2)
    if a2:
        law = out["law"] = _sweep_law(a2.fit, a3.fit if a3 else None)
        top = max(r.budget for r in rows if r.budget)
        out["plan"] = _step(errors, "plan", _plan_next, law, top, seq_len, a3.fit if a3 else None)
        out["references"] = _step(errors, "reference laws", _references, a2.curve) or {}
    return out


def analyze(sweep_dir: str | Path, *, n_boot: int = 200, seed: int = 0,
            title: str | None = None) -> StudyAnalysis:
    """Fit, backtest and plan from a sweep folder; writes ``runs.csv`` and ``fit.json``; returns the
    analysis."""
    sweep_dir = Path(sweep_dir)
    with Registry.open(sweep_dir / REGISTRY_FILENAME, create=False) as reg:
        csv_path = reg.export_runs_csv(sweep_dir / RUNS_CSV)
        rows = _run_rows(reg)
        sweep = reg.sweep() or {}
        run_dirs = {r.run_id: Path(reg.artefacts(r.run_id).get("run_dir", sweep_dir / "runs" / r.run_id))
                    for r in reg.runs()}
    seq_len = ((sweep.get("spec") or {}).get("family") or {}).get("seq_len")
    fitted = _fit_all(csv_path, rows, seq_len, n_boot, seed)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    analysis = StudyAnalysis(title=title or f"IsoFLOP sweep {sweep.get('sweep_id', sweep_dir.name)}",
                             runs=rows,
                             curves={rid: read_curve(d) for rid, d in run_dirs.items()}, created=created,
                             **{**fitted, "notes": tuple(fitted["notes"])})
    atomic_write_text(sweep_dir / FIT_JSON,
                      json.dumps(jsonable(analysis.to_dict()), indent=1, allow_nan=False))
    return analysis
