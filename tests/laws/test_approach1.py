"""Approach 1 (training-curve envelope): synthetic recovery and the misfitting checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from scalinglab.errors import DataError
from scalinglab.laws.approach1 import fit_approach1
from scalinglab.laws.runs import RunsTable, load_runs_csv
from tests.conftest import shared_csv
from tests.laws.test_approach2 import TRUE, chinchilla_loss


def curves_table(n_sizes=24):
    n_all, d_all, ids = [], [], []
    for i, n in enumerate(np.logspace(7, 10, n_sizes)):
        d = np.logspace(8, 12, 60)  # checkpoints of one long run
        n_all += [n] * len(d)
        d_all += list(d)
        ids += [f"run{i}"] * len(d)
    n_all, d_all = np.array(n_all), np.array(d_all)
    return RunsTable.from_arrays(
        n_params=n_all, n_tokens=d_all, loss=chinchilla_loss(n_all, d_all), run_id=np.array(ids)
    )


def test_envelope_recovers_allocation_exponent():
    res = fit_approach1(curves_table())
    a_true = TRUE["beta"] / (TRUE["alpha"] + TRUE["beta"])
    assert res.a == pytest.approx(a_true, abs=0.03)
    assert res.n_runs == 24
    # envelope loss is the minimum of all curves at each C
    assert np.all(np.diff(res.loss) <= 1e-9)


def test_needs_curves():
    t = RunsTable.from_arrays(n_params=[1e7, 1e8], n_tokens=[1e9, 1e9], loss=[3.0, 2.8], run_id=["a", "b"])
    with pytest.raises(DataError, match="training curves"):
        fit_approach1(t)


def test_misfitting_checkpoints():
    runs = load_runs_csv(
        shared_csv("misfitting2025_scaling_results_all_ckpts.csv"),
        run_id_col=["model", "peak_lr", "total_steps", "sweep"],
    )
    res = fit_approach1(runs)
    print(f"\nmisfitting all ckpts, Approach 1: a={res.a:.4f} b={res.b:.4f} runs={res.n_runs}")
    assert 0.3 < res.a < 0.7
    assert res.n_runs > 100
