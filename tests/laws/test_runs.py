"""The runs loader: column mapping, derived columns, filters, drop rules, and one-line DataErrors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalinglab.errors import DataError
from scalinglab.laws.runs import RunsTable, group_by_log_gap, load_runs_csv
from tests.conftest import shared_csv


def write(tmp_path, text, name="runs.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_sweep_export_reads_without_flags(tmp_path):
    p = write(
        tmp_path,
        "run_id,n_params,n_tokens,compute_flops,loss,budget,status\n"
        "r1,1e6,2e7,1.2e14,3.5,1e14,done\n"
        "r2,2e6,1e7,1.2e14,3.4,1e14,done\n"
        "r3,4e6,5e6,1.2e14,,1e14,failed\n",
    )
    t = load_runs_csv(p)
    assert len(t) == 2
    assert list(t.run_id) == ["r1", "r2"]
    assert np.allclose(t.budget, 1e14)
    assert any("not done" in n for n in t.notes)


def test_empty_budget_column_means_no_budget(tmp_path):
    p = write(
        tmp_path,
        "run_id,n_params,n_tokens,compute_flops,loss,budget,status\n"
        "r1,1e6,2e7,1.2e14,3.5,,done\nr2,2e6,1e7,1.2e14,3.4,,done\n",
    )
    assert load_runs_csv(p).budget is None


def test_epoch_mapping_derives_d_and_drops_top_loss():
    t = load_runs_csv(
        shared_csv("epoch_chinchilla_extracted.csv"),
        n_col="Model Size",
        c_col="Training FLOP",
        drop_top_loss=5,
    )
    assert len(t) == 240
    assert np.allclose(t.n_tokens, t.compute_flops / (6 * t.n_params))
    assert "D derived as C/(6*N)" in t.notes
    assert t.loss.max() < 4.0  # the five dropped runs are the ones near loss 4-5
    assert any("240 points" in n for n in t.notes)


def test_c_derived_from_n_and_d_and_where_and_exclude():
    t = load_runs_csv(
        shared_csv("openathena_isoflops_combined_annotated.csv"),
        where={"experiment": "llama_3__raw_loss"},
        exclude_col="outlier",
    )
    assert len(t) == 116  # 133 rows, 17 flagged
    assert np.allclose(t.compute_flops, 6 * t.n_params * t.n_tokens)
    assert t.budget is not None and set(np.unique(t.budget)) >= {6e18, 1e21}


def test_drop_rule_and_units_in_cells(tmp_path):
    p = write(tmp_path, "N,D,loss,tag\n7B,1T,2.1,a\n1B,20B,2.6,b\n100M,2B,5.5,a\n")
    t = load_runs_csv(p, drop_where="loss>5")
    assert len(t) == 2 and t.n_params[0] == 7e9
    t2 = load_runs_csv(p, drop_where=["tag==b"])
    assert len(t2) == 2 and 1e9 not in t2.n_params


@pytest.mark.parametrize(
    "text,kwargs,needle",
    [
        ("N,D,loss\n1,2,x\n", {}, "non-numeric"),
        ("N,D,loss\n1e6,2e7,3\n1e6,-2,3\n1e6,2e7,nan\n", {}, "line(s) 3, 4"),
        ("N,loss\n1e6,3\n", {}, "columns present: N, loss"),
        ("N,D,C\n1,2,3\n", {}, "no loss column"),
        ("N,D,loss\n1e6,2e7,3\n", {"n_col": "params"}, "columns present"),
        ("N,D,loss\n1e6,2e7,3\n", {"where": {"N": "5"}}, "no rows with N"),
        ("N,D,loss,o\n1e6,2e7,3,maybe\n", {"exclude_col": "o"}, "not a boolean"),
        ("N,D,loss\n1e6,2e7,3\n", {"drop_where": "loss ~ 3"}, "COLUMN OP VALUE"),
        ("N,D,loss\n1e6,2e7,3\n", {"min_points": 5}, "need at least 5"),
        ("N,D,loss\n1e6,2e7\n", {}, "cells"),
    ],
)
def test_bad_input_is_one_line_dataerror(tmp_path, text, kwargs, needle):
    with pytest.raises(DataError) as err:
        load_runs_csv(write(tmp_path, text), **kwargs)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_directory_and_binary(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_runs_csv(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="not a regular file"):
        load_runs_csv(tmp_path)
    p = tmp_path / "b.csv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(DataError, match="not a CSV"):
        load_runs_csv(p)


def test_group_by_log_gap_clusters_scattered_budgets():
    c = np.array([9.2e18, 9.9e18, 1.01e19, 5.9e19, 6.1e19, 1e21])
    labels = group_by_log_gap(c)
    assert len(np.unique(labels)) == 3
    assert labels[0] == labels[2] and labels[3] == labels[4]


def test_table_is_immutable_and_subset_works():
    t = RunsTable.from_arrays(n_params=[1e6, 2e6, 4e6], n_tokens=[1e7, 1e7, 1e7], loss=[3.0, 2.9, 2.8])
    with pytest.raises(ValueError):
        t.loss[0] = 1.0
    s = t.subset(np.array([0, 0, 2]))
    assert len(s) == 3 and s.n_params[1] == 1e6
    assert "C derived as 6*N*D" in t.notes


_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_fail_only_with_dataerror(tmp_path, data):
    p = tmp_path / "g.csv"
    p.write_bytes(data)
    try:
        load_runs_csv(p)
    except DataError as err:
        assert "\n" not in str(err)


_cell = st.one_of(
    st.text(alphabet='0123456789.eE-+,"x nanifBTM', max_size=8),
    st.sampled_from(["1e6", "2e9", "0", "-1", "inf", "nan", "7B", "", "3.2"]),
)


@_SETTINGS
@given(
    st.lists(st.lists(_cell, min_size=1, max_size=5), min_size=1, max_size=6),
    st.permutations(["n_params", "n_tokens", "loss", "compute_flops", "junk"]),
)
def test_random_csv_text_fails_only_with_dataerror(tmp_path, rows, header):
    text = ",".join(header) + "\n" + "\n".join(",".join(r) for r in rows)
    p = tmp_path / "g.csv"
    p.write_text(text)
    try:
        t = load_runs_csv(p)
    except DataError:
        return
    assert np.all(t.loss > 0) and np.all(np.isfinite(t.n_params))


def test_unique_tokens_column_is_found_kept_and_checked(tmp_path):
    path = tmp_path / "u.csv"
    path.write_text("n_params,n_tokens,U_unique_tokens,loss\n1e8,4e9,1e9,3.0\n2e8,8e9,1e9,2.9\n4e8,4e9,4e9,2.8\n")
    t = load_runs_csv(path)
    assert t.unique_tokens.tolist() == [1e9, 1e9, 4e9]
    assert t.subset(np.array([2, 0])).unique_tokens.tolist() == [4e9, 1e9]
    assert len(t.concat(t).unique_tokens) == 6 and t.to_dict()["unique_tokens"][2] == 4e9
    assert load_runs_csv(path, unique_col="n_params").unique_tokens[0] == 1e8
    path.write_text("n_params,n_tokens,unique_tokens,loss\n1e8,4e9,0,3.0\n2e8,8e9,1e9,2.9\n")
    with pytest.raises(DataError, match="'unique_tokens'.*line\\(s\\) 2"):
        load_runs_csv(path)


# ------------------------------------------------------------------------------ duplicates and C-only tables
_DUP = "n_params,n_tokens,loss\n1e6,2e7,3.5\n2e6,1e7,3.4\n1e6,2e7,3.5\n4e6,5e6,3.3\n1e6,2e7,3.5\n"


def test_exact_duplicate_rows_are_dropped_with_a_note(tmp_path):
    t = load_runs_csv(write(tmp_path, _DUP))
    assert len(t) == 3 and list(t.line_numbers) == [2, 3, 5]
    note = next(n for n in t.notes if "duplicate" in n)
    assert note.startswith("dropped 2 exact duplicate") and "4, 6" in note and "keep_duplicates=True" in note


def test_keep_duplicates_keeps_them_and_says_so(tmp_path):
    t = load_runs_csv(write(tmp_path, _DUP), keep_duplicates=True)
    assert len(t) == 5 and any(n.startswith("kept 2 exact duplicate") for n in t.notes)


def test_rows_differing_in_any_cell_are_not_duplicates(tmp_path):
    t = load_runs_csv(write(tmp_path, "run_id,n_params,n_tokens,loss\na,1e6,2e7,3.5\nb,1e6,2e7,3.5\n"))
    assert len(t) == 2 and not any("duplicate" in n for n in t.notes)


def test_compute_and_loss_alone_load_for_compute_only_forms(tmp_path):
    t = load_runs_csv(write(tmp_path, "flops,loss\n1e18,3.1\n1e19,2.9\n1e20,2.7\n"))
    assert t.n_params is None and t.n_tokens is None and not t.has_nd
    assert list(t.compute_flops) == [1e18, 1e19, 1e20]
    assert any("compute-only" in n for n in t.notes)
    assert len(t.subset(np.array([0, 0, 2]))) == 3 and t.to_dict()["n_params"] is None
    with pytest.raises(DataError, match="only compute and loss"):
        t.require_nd("Approach 2")
    with pytest.raises(DataError, match="no n_params"):
        load_runs_csv(write(tmp_path, "flops,loss\n1e18,3.1\n1e19,2.9\n", "b.csv"), drop_where="n_params>1")


def test_one_of_n_or_d_alone_is_still_refused(tmp_path):
    with pytest.raises(DataError, match="need two of N"):
        load_runs_csv(write(tmp_path, "n_params,loss\n1e6,3.1\n2e6,2.9\n"))
    with pytest.raises(DataError, match="need two of N"):
        RunsTable.from_arrays(n_tokens=[1e9, 2e9], loss=[3.0, 2.9])
