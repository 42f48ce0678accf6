"""Downstream laws on published evaluations: Gadre et al. 2024 (loss -> 17-task error, per training dataset,
predicting the 1.4B and 6.9B models) and Ruan et al. 2024's base-model table (compute -> accuracy within a
family, backtested on each family's largest model)."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.laws.downstream_io import read_evals_csv
from scalinglab.laws.downstream_table import fit_evals
from scalinglab.laws.ladder import fit_ladder
from tests.conftest import shared_csv

# The 17 tasks of Gadre et al. 2024's average top-1 error (their Table 2 / the repo notebook).
GADRE_TASKS = ("bigbench_operators", "pubmed_qa_labeled", "hellaswag_zeroshot", "boolq", "arc_easy", "coqa",
               "bigbench_dyck_languages", "lambada_openai", "bigbench_novel_concepts", "winograd",
               "bigbench_cs_algorithms", "commonsense_qa", "bigbench_qa_wikidata", "hellaswag", "copa",
               "squad", "piqa")
DATASETS = ("rpj", "c4_original", "rw_original")
SIZE_411M, SIZE_154M = 411_616_256, 153_677_376


@pytest.fixture(scope="module")
def gadre():
    return read_evals_csv(shared_csv("gadre2024_overtraining_models.csv"), metrics=GADRE_TASKS,
                          group_col="dataset", model_col="name", loss_col="loss__c4_val")


def _errors(table, fit_max):
    study = fit_evals(table, x="loss", form="gadre", average=True, fit_max_params=fit_max,
                      holdout_above_params=SIZE_411M, n_resamples=0)
    out = {}
    for bt in study.backtests:
        size = dict(zip(table.models, table.n_params, strict=True))
        out[bt.fit.group] = [(size[r["model"]], r["rel_error"]) for r in bt.rows]
    return out


def test_gadre_fit_up_to_411m(gadre):
    errs = _errors(gadre, SIZE_411M)
    assert sorted(errs) == sorted(DATASETS)
    assert all(len(v) == 3 for v in errs.values())  # 1.4B at two multipliers and 6.9B, per dataset
    print("<=411M:", {g: [f"{n / 1e9:.1f}B {100 * e:.2f}%" for n, e in v] for g, v in errs.items()})
    # The acceptance bound for RedPajama (measured 0.72 / 2.31 / 1.42 %); C4 and RefinedWeb are
    # reported (measured 0.04 / 7.20 / 4.73 % and 1.66 / 6.17 / 5.89 %).
    assert max(e for _, e in errs["rpj"]) <= 0.03


def test_gadre_fit_up_to_154m_predicts_all_nine_within_5_percent(gadre):
    errs = _errors(gadre, SIZE_154M)
    flat = [e for v in errs.values() for _, e in v]
    print("<=154M:", {g: [f"{100 * e:.2f}%" for _, e in v] for g, v in errs.items()})
    assert len(flat) == 9 and max(flat) <= 0.05


def test_gadre_chained_through_a_predicted_loss(gadre):
    # Bhagia et al.'s two steps on Gadre's data: a Chinchilla loss law from the <=411M models predicts the
    # 1.4B / 6.9B C4 loss, the error law maps it to the 17-task error.
    rows = np.array([g == "rpj" for g in gadre.groups])
    acc = np.mean([gadre.scores[t] for t in GADRE_TASKS], axis=0)[rows]
    n, d, loss = gadre.n_params[rows], gadre.n_tokens[rows], gadre.loss[rows]
    small = n <= SIZE_411M
    fit = fit_ladder(n[small], d[small], loss[small], acc[small], form="gadre", n_items=10_000, n_resamples=0)
    big = ~small
    err_pred = fit.predict(n[big], d[big])
    rel = np.abs(err_pred - (1 - acc[big])) / (1 - acc[big])
    loss_rel = np.abs(fit.predict_loss(n[big], d[big]) - loss[big]) / loss[big]
    print("chain rpj: error", np.round(100 * rel, 2), "% ; loss", np.round(100 * loss_rel, 2), "%")
    # The paper reports 3.6 % (1.4B, M=640) and 0.05 % (6.9B, M=20) with its own loss law; ours carries the
    # Chinchilla law's loss error (<= 3.1 % here) into the error law. A bound of 10 % says the chain works.
    assert np.all(np.isfinite(rel)) and rel.max() < 0.10


@pytest.fixture(scope="module")
def obsscaling():
    table = read_evals_csv(shared_csv("obsscaling_base_llm_benchmark_eval.csv"), group_col="Model Family",
                           model_col="Model")
    return table, fit_evals(table, x="compute", min_models=5, holdout_top=1, n_resamples=0)


def test_obsscaling_only_families_with_five_models_with_flops(obsscaling):
    table, study = obsscaling
    families = sorted({f.group for f in study.fits})
    flops = table.compute_flops
    counts = {g: int(np.sum([(gg == g) for gg in table.groups] & np.isfinite(flops))) for g in families}
    assert len(families) == 6 and all(c >= 5 for c in counts.values()), counts
    with_flops = {g for g, c in zip(table.groups, flops, strict=True) if np.isfinite(c)}
    assert len(with_flops) == 39  # 6 of the 39 families that report FLOPs qualify


def test_obsscaling_chance_floors_and_near_chance_flag(obsscaling):
    _, study = obsscaling
    floors = {f.task: f.chance for f in study.fits}
    assert floors["MMLU"] == floors["ARC-C"] == floors["HellaSwag"] == 0.25
    assert floors["Winograd"] == floors["XWinograd"] == 0.5
    assert floors["GSM8K"] == floors["HumanEval"] == 0.0
    flagged = {(f.group, f.task) for f in study.fits if f.status == "no_signal"}
    assert ("OPT", "HumanEval") in flagged  # best OPT scores 1.2 % on HumanEval: within 2 SE of 0


def test_obsscaling_backtest_on_each_familys_largest_model(obsscaling):
    table, study = obsscaling
    rows = [(b.fit.group, b.fit.task, r) for b in study.backtests for r in b.rows]
    assert {g for g, _, _ in rows} == {f.group for f in study.fits}
    for g, _, r in rows:  # the held-out model is the family's largest by compute
        members = [i for i, gg in enumerate(table.groups) if gg == g and np.isfinite(table.compute_flops[i])]
        assert r["model"] == table.models[max(members, key=lambda i: table.compute_flops[i])]
    abs_err = np.array([r["abs_error"] for _, _, r in rows])
    print(f"obsscaling backtests: {len(rows)}, median |error| {np.median(abs_err):.4f}, "
          f"max {abs_err.max():.4f}")
    # Bhagia et al. 2024 report ~2 points on multiple-choice tasks for a controlled ladder and 6.9 on harder
    # ones; a median of 5 points over all tasks and families sits between the two.
    assert np.median(abs_err) < 0.05
