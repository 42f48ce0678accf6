"""Approach 2 on published IsoFLOP data: Llama 3, Porian et al. 2024, Open-Athena's six sources.

The tables printed here (run with ``-s``) are the ones in docs/approaches.md.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest

from scalinglab.laws.approach2 import fit_approach2
from scalinglab.laws.bootstrap import bootstrap_approach2
from scalinglab.laws.runs import load_runs_csv
from tests.conftest import shared_csv

PORIAN_CONFIG = {
    "dataset": "rw",
    "hparams": "tuned",
    "warmup": "short",
    "decay": "const",
    "param_count": "standard",
    "loss_split": "val",
}


def test_llama3_d_star_exponent():
    runs = load_runs_csv(shared_csv("llama3_isoflop_points_extracted.csv"))
    res = fit_approach2(runs)
    boot = bootstrap_approach2(runs, n_resamples=1000, seed=0)
    lo, hi = boot.interval("b")
    d_at = res.d_opt(3.8e25)
    print(
        f"\nLlama 3 digitised IsoFLOPs ({len(runs)} points, {len(res.vertices)} budgets): "
        f"D* = {res.d_law.coef:.4g} C^{res.b:.4f} (95% bootstrap CI of b {lo:.4f}-{hi:.4f}); "
        f"N* = {res.n_law.coef:.4g} C^{res.a:.4f}; "
        f"at 3.8e25 FLOPs D* = {d_at:.4g}, N* = {res.n_opt(3.8e25):.4g}"
    )
    assert 0.50 < res.b < 0.58
    assert res.b == pytest.approx(0.537, abs=0.02)  # published 0.537 (Llama 3 report, Fig. 3)
    assert lo < 0.537 < hi
    assert 0.5 * 16.55e12 < d_at < 2 * 16.55e12  # published 16.55T tokens at 3.8e25


def test_porian_vertices_against_their_optima():
    runs = load_runs_csv(shared_csv("porian2024_isoflop_points.csv"), where=PORIAN_CONFIG)
    pairs = load_runs_csv(
        shared_csv("porian2024_optimal_pairs.csv"),
        where=PORIAN_CONFIG,
        n_col="n",
        d_col="t",
        budget_col="flops",
    )
    res = fit_approach2(runs)
    theirs = dict(zip(pairs.budget, pairs.n_params, strict=True))
    print(f"\nPorian et al. 2024, {PORIAN_CONFIG}: ours a = {res.a:.4f}, published 0.497 (0.491-0.505)")
    print("| budget C | our N* | N* 95% (delta) | their N* | ratio | points |")
    print("|---|---|---|---|---|---|")
    ratios = []
    for v in res.vertices:
        lo, hi = v.n_interval()
        ratio = v.n_opt / theirs[v.budget]
        ratios.append(ratio)
        print(
            f"| {v.budget:.3g} | {v.n_opt:.4g} | {lo:.3g}-{hi:.3g} | {theirs[v.budget]:.4g} | {ratio:.3f} | "
            f"{v.n_points} |"
        )
    assert sorted(theirs) == [v.budget for v in res.vertices]  # every budget of theirs has a vertex of ours
    assert all(0.5 < r < 2.0 for r in ratios)
    assert res.a == pytest.approx(0.497, abs=0.05)


def _experiments():
    path = shared_csv("openathena_isoflops_combined_annotated.csv")
    with open(path, newline="") as fh:
        return path, sorted({row["experiment"] for row in csv.DictReader(fh)})


def test_openathena_each_experiment_a_between_040_and_060():
    path, experiments = _experiments()
    assert len(experiments) == 8
    summary = [
        "| experiment | points | budgets | a | b | 95% CI of a (bootstrap) |",
        "|---|---|---|---|---|---|",
    ]
    vertex_rows = [
        "| experiment | budget C | N* | N* 95% (delta) | D* | L* | points |",
        "|---|---|---|---|---|---|---|",
    ]
    for exp in experiments:
        runs = load_runs_csv(path, where={"experiment": exp}, exclude_col="outlier")
        res = fit_approach2(runs)
        lo, hi = bootstrap_approach2(runs, n_resamples=300, seed=0).interval("a")
        summary.append(
            f"| {exp} | {len(runs)} | {len(res.vertices)} | {res.a:.4f} | {res.b:.4f} | {lo:.3f}-{hi:.3f} |"
        )
        for v in res.vertices:
            vlo, vhi = v.n_interval()
            vertex_rows.append(
                f"| {exp} | {v.budget:.3g} | {v.n_opt:.4g} | {vlo:.3g}-{vhi:.3g} | {v.d_opt:.4g} | "
                f"{v.loss_opt:.4f} | {v.n_points} |"
            )
        assert 0.40 <= res.a <= 0.60, (exp, res.a)
        assert np.all([v.curvature > 0 for v in res.vertices])
    print("\n" + "\n".join(summary) + "\n\n" + "\n".join(vertex_rows))


# Porian et al.'s "reproducing Kaplan" setting (RefinedWeb, base hparams, long warmup, Kaplan decay and
# non-embedding 6N counting, train loss): the three smallest budgets' parabolas bottom out below their
# smallest model, and with those extrapolated vertices a = 1.209 (D* exponent negative).
PORIAN_KAPLAN = {"source_file": "summary_df", "dataset": "rw", "hparams": "base", "warmup": "long",
                 "decay": "kaplan", "param_count": "kaplan", "loss_split": "train"}
PORIAN_KAPLAN_EXTRAPOLATED = (1.25e16, 2.5e16, 5e16)


def test_porian_kaplan_setting_excludes_extrapolated_vertices():
    runs = load_runs_csv(shared_csv("porian2024_isoflop_points.csv"), where=PORIAN_KAPLAN, budget_col="flops")
    res = fit_approach2(runs)
    kept = fit_approach2(runs, keep_extrapolated=True)
    print(f"\nPorian et al. 2024, {PORIAN_KAPLAN}: a = {res.a:.4f} without the extrapolated vertices, "
          f"{kept.a:.4f} with them; published 0.835 (0.824-0.846)")
    assert res.skipped_budgets == PORIAN_KAPLAN_EXTRAPOLATED
    assert all(f"excluded budget {b:.3g}" in w
               for b, w in zip(PORIAN_KAPLAN_EXTRAPOLATED, res.warnings, strict=True))
    assert res.a == pytest.approx(0.865, abs=0.01) and res.b > 0
    assert kept.a == pytest.approx(1.209, abs=0.01) and kept.b < 0  # what keeping them gives
