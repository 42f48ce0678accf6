"""`scalinglab fit`, `predict`, `laws`: exit codes, JSON on stdout, numbers, one-line errors via main()."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalinglab.cli.app import app, main
from tests.conftest import exit2, shared_csv
from tests.laws.test_approach2 import isoflop_table

runner = CliRunner()


def run_ok(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def isoflop_csv(tmp_path, noise=0.003):
    t = isoflop_table(noise=noise)
    p = tmp_path / "iso.csv"
    rows = ["run_id,n_params,n_tokens,compute_flops,loss,budget,status"]
    rows += [
        f"r{i},{float(n)!r},{float(d)!r},{float(c)!r},{float(y)!r},{float(b)!r},done"
        for i, (n, d, c, y,
                b) in enumerate(zip(t.n_params, t.n_tokens, t.compute_flops, t.loss, t.budget, strict=True))
    ]
    p.write_text("\n".join(rows) + "\n")
    return p


def test_fit_approach3_json_matches_epoch_optimum(tmp_path):
    out = tmp_path / "fit.json"
    res = run_ok(
        [
            "fit",
            str(shared_csv("epoch_chinchilla_extracted.csv")),
            "--n-col",
            "Model Size",
            "--c-col",
            "Training FLOP",
            "--drop-top-loss",
            "5",
            "--bootstrap",
            "100",
            "--at",
            "5.76e23",
            "--out",
            str(out),
            "--json",
        ]
    )
    d = json.loads(res.stdout)
    assert d["n_points"] == 240 and "D derived as C/(6*N)" in d["notes"]
    assert d["fit"]["params"]["alpha"] == pytest.approx(0.34731, rel=5e-3)
    assert d["fit"]["objective"] <= 1.018275e-3
    lo, hi = d["bootstrap"]["intervals"]["B"]
    assert lo < 2143.4 < hi
    assert d["allocation"][0]["n_params"] == pytest.approx(7.3e10, rel=0.05)
    assert out.is_file()
    # the saved fit is usable by predict
    pred = json.loads(
        run_ok(["predict", "--law", str(out), "--params", "7B", "--tokens", "2T", "--json"]).stdout
    )
    assert pred["loss"]["loss"] == pytest.approx(2.0644, abs=2e-3)


def test_fit_approach2_with_backtest_and_out(tmp_path):
    path = isoflop_csv(tmp_path)
    out = tmp_path / "a2.json"
    d = json.loads(
        run_ok(
            [
                "fit",
                str(path),
                "--approach",
                "2",
                "--bootstrap",
                "50",
                "--holdout-top",
                "1",
                "--out",
                str(out),
                "--json",
            ]
        ).stdout
    )
    assert d["fit"]["a"] == pytest.approx(0.37 / 0.72, abs=0.02)
    assert len(d["fit"]["vertices"]) == 4
    assert d["backtest"]["n_test"] == 9
    assert d["bootstrap"]["n_resamples"] == 50
    pred = json.loads(run_ok(["predict", "--law", str(out), "--compute", "1e22", "--json"]).stdout)
    assert pred["allocation"][0]["n_params"] == pytest.approx(
        10 ** (np.log10(d["fit"]["n_law"]["coef"]) + d["fit"]["a"] * 22), rel=1e-9
    )
    table = run_ok(["fit", str(path), "--approach", "2"]).stdout
    assert "Vertices per IsoFLOP budget" in table


def test_fit_where_and_exclude_flags():
    d = json.loads(
        run_ok(
            [
                "fit",
                str(shared_csv("openathena_isoflops_combined_annotated.csv")),
                "--approach",
                "2",
                "--where",
                "experiment=llama_3__raw_loss",
                "--exclude-col",
                "outlier",
                "--json",
            ]
        ).stdout
    )
    assert d["n_points"] == 116
    assert 0.4 < d["fit"]["a"] < 0.6


def test_predict_preset_allocation_and_loss():
    d = json.loads(
        run_ok(
            [
                "predict",
                "--law",
                "epoch2024",
                "--compute",
                "5.76e23",
                "--params",
                "7B",
                "--tokens",
                "2T",
                "--json",
            ]
        ).stdout
    )
    a = d["allocation"][0]
    assert a["n_params"] == pytest.approx(72e9, rel=0.05)
    assert a["n_tokens"] == pytest.approx(1.33e12, rel=0.05)
    expected = 1.8172 + 482.01 / 7e9**0.3478 + 2085.43 / 2e12**0.3658
    assert d["loss"]["loss"] == pytest.approx(expected, rel=1e-6)
    table = run_ok(["predict", "--law", "epoch2024", "--compute", "5.76e23", "--params", "7B", "--tokens",
                    "2T"])
    assert "epoch2024" in table.stdout and "C (FLOPs)" in table.stdout and "D_opt (tokens)" in table.stdout
    assert "72.2B" in table.stdout and "1.33T" in table.stdout  # counts written the way people write them
    assert "7B params" in table.stdout


def test_laws_lists_presets_with_sources():
    d = json.loads(run_ok(["laws", "--json"]).stdout)
    names = {x["name"] for x in d}
    assert {"chinchilla", "epoch2024", "llama3"} <= names
    assert all(x["source"] for x in d)
    assert "arXiv" in run_ok(["laws"]).stdout


@pytest.mark.parametrize(
    "make,extra,needle",
    [
        (lambda p: p / "missing.csv", [], "does not exist"),
        (lambda p: (p / "bin.csv").write_bytes(b"\x00\xff\xfe\x89PNG") and p / "bin.csv", [], "not a CSV"),
        (lambda p: (p / "c.csv").write_text("a,b\n1,2\n") and p / "c.csv", [], "columns present: a, b"),
        (lambda p: (p / "c.csv").write_text("N,D,loss\n1e6,2e7,x\n") and p / "c.csv", [], "non-numeric"),
        (
            lambda p: (p / "c.csv").write_text("N,D,loss\n1e6,2e7,3\n1e6,0,3\n") and p / "c.csv",
            [],
            "line(s) 3",
        ),
        (
            lambda p: (p / "c.csv").write_text("N,D,loss\n1e6,2e7,3\n2e6,1e7,2.9\n") and p / "c.csv",
            [],
            "need more points than parameters",
        ),
        (
            lambda p: (p / "c.csv").write_text("N,D,loss\n1e6,2e7,3\n2e6,1e7,2.9\n") and p / "c.csv",
            ["--approach", "2"],
            "IsoFLOP budget",
        ),
        (
            lambda p: (p / "c.csv").write_text("N,D,loss\n1e6,2e7,3\n2e6,1e7,2.9\n") and p / "c.csv",
            ["--form", "saturating_k"],
            "does not have",
        ),
        (
            lambda p: (p / "c.csv").write_text("N,D,loss\n1e6,2e7,3\n") and p / "c.csv",
            ["--where", "oops"],
            "COLUMN=VALUE",
        ),
    ],
)
def test_fit_bad_input_exits_2_with_one_line(tmp_path, capsys, make, extra, needle):
    assert needle in exit2(["fit", str(make(tmp_path)), *extra], capsys)


def test_predict_bad_input_exits_2(tmp_path, capsys):
    assert "unknown law" in exit2(["predict", "--law", "nope", "--compute", "1e24"], capsys)
    assert "lots" in exit2(["predict", "--law", "epoch2024", "--compute", "lots"], capsys)
    assert "--compute" in exit2(["predict", "--law", "epoch2024"], capsys)
    assert "predicts no loss" in exit2(["predict", "--law", "llama3", "--params", "7B", "--tokens", "2T"],
                                       capsys)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "JSON" in exit2(["predict", "--law", str(bad), "--compute", "1e24"], capsys)


def test_at_needs_an_allocation_law(tmp_path, capsys):
    assert "--at needs" in exit2(["fit", str(isoflop_csv(tmp_path)), "--form", "kaplan_n", "--at", "1e24"],
                                 capsys)


_GARBAGE = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@_GARBAGE
@given(st.one_of(st.binary(max_size=300),
                 st.text(alphabet="n_params,tokens,loss,budget\n0123456789.e-+x\"",
                         max_size=300).map(str.encode)))
def test_fit_cli_on_garbage_exits_2_with_one_line(tmp_path, capsys, data):
    path = tmp_path / "garbage.csv"
    path.write_bytes(data)
    capsys.readouterr()
    with pytest.raises(SystemExit) as ex:
        main(["fit", str(path), "--json"])
    err = capsys.readouterr().err.strip()
    if ex.value.code == 0:  # the garbage happened to be a valid runs table
        return
    assert ex.value.code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err


def test_approach2_fit_out_feeds_plan_and_predict(tmp_path, capsys):
    """fit --approach 2 --out FIT.json, then plan --law FIT.json and predict --law FIT.json."""
    out = tmp_path / "a2.json"
    fit = json.loads(run_ok(["fit", str(isoflop_csv(tmp_path)), "--approach", "2", "--out", str(out),
                             "--json"]).stdout)["fit"]
    n_at = fit["n_law"]["coef"] * 1e22 ** fit["a"]
    d_at = fit["d_law"]["coef"] * 1e22 ** fit["b"]
    plan = json.loads(run_ok(["plan", "--law", str(out), "--compute", "1e22", "--gpus", "8",
                              "--json"]).stdout)
    assert plan["allocation"]["n_params"] == pytest.approx(n_at, rel=1e-9)
    assert plan["allocation"]["n_tokens"] == pytest.approx(d_at, rel=1e-9)
    assert plan["allocation"]["loss"] is None and "Approach 2" in plan["allocation"]["law_source"]
    pred = json.loads(run_ok(["predict", "--law", str(out), "--compute", "1e22", "--json"]).stdout)
    assert pred["allocation"][0]["n_tokens"] == pytest.approx(d_at, rel=1e-9)
    # the power laws predict no loss; that is a one-line bad-input error, not a traceback
    assert "predicts no loss" in exit2(["predict", "--law", str(out), "--params", "7B", "--tokens", "2T"],
                                       capsys)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"approach": 2, "n_law": {"coef": 1.0}}))
    assert "n_law/d_law" in exit2(["plan", "--law", str(broken), "--compute", "1e22"], capsys)


def _chinchilla_csv(tmp_path):
    rows = ["N,D,loss"] + [
        f"{n},{d},{1.7 + 400 / n**0.34 + 400 / d**0.28:.6f}"
        for n in (1e7, 3e7, 1e8, 3e8, 1e9) for d in (1e8, 1e9, 1e10)
    ]
    path = tmp_path / "ok.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--bootstrap", "-5"], "--bootstrap -5"),
        (["--bootstrap", "5"], "at least 10"),
        (["--level", "2"], "--level"),
        (["--holdout-top", "0"], "--holdout-top 0"),
        (["--holdout-top", "100"], "only 9"),
        (["--holdout-above", "1e40"], "no runs are held out"),
        (["--at", "-1e20"], "positive number of FLOPs"),
    ],
)
def test_bad_fit_options_fail_before_any_log_line(tmp_path, capsys, extra, needle):
    """Option errors are refused before the notes and progress lines, so stderr holds the error alone."""
    assert needle in exit2(["fit", str(_chinchilla_csv(tmp_path)), *extra], capsys)


def test_predict_refuses_non_positive_sizes(capsys):
    assert "positive counts" in exit2(["predict", "--law", "epoch2024", "--params", "-7B", "--tokens", "2T"],
                                      capsys)
    assert "positive counts" in exit2(["predict", "--law", "epoch2024", "--params", "7B", "--tokens", "0"],
                                      capsys)


def test_data_constrained_fit_from_csv_feeds_the_planner(tmp_path):
    """fit --form data_constrained on Muennighoff et al.'s 182 R*-fit runs (U column found by name), --out,
    then plan --unique-tokens with that fit: the planner uses the fitted R_D*, R_N*, not the published
    ones."""
    from scalinglab.laws.data_constrained import DataConstrainedLaw

    out = tmp_path / "dc.json"
    csv_path = shared_csv("muennighoff2023_datablations_runs.csv")
    args = ["fit", str(csv_path), "--where", "in_Rstar_fit_set=1", "--d-col", "D_tokens_total"]
    d = json.loads(run_ok([*args, "--form", "data_constrained", "--out", str(out), "--json"]).stdout)
    assert d["n_points"] == 182 and d["fit"]["objective"] < 0.01583  # published objective of their law
    params = d["fit"]["params"]
    plan = json.loads(
        run_ok(["plan", "--law", str(out), "--compute", "1e21", "--unique-tokens", "2e9", "--gpus", "8",
                "--json"]).stdout
    )["allocation"]
    assert plan["mode"] == "data-constrained"
    expected = DataConstrainedLaw(**params).optimal_allocation(1e21, 2e9)
    assert plan["n_params"] == pytest.approx(expected.n_params, rel=1e-6)
    assert plan["loss"] == pytest.approx(expected.loss, rel=1e-9)
    # with unlimited data the saved fit predicts its base law
    pred = json.loads(run_ok(["predict", "--law", str(out), "--params", "1B", "--tokens", "20B",
                              "--json"]).stdout)
    base = params["E"] + params["A"] / 1e9 ** params["alpha"] + params["B"] / 2e10 ** params["beta"]
    assert pred["loss"]["loss"] == pytest.approx(base, rel=1e-12)


# ------------------------------------------------------------------------------ fits that speak up
_PORIAN_KAPLAN_ARGS = ["--approach", "2", "--budget-col", "flops", "--where", "source_file=summary_df",
                       "--where", "dataset=rw", "--where", "hparams=base", "--where", "warmup=long",
                       "--where", "decay=kaplan", "--where", "param_count=kaplan", "--where",
                       "loss_split=train"]


def test_porian_extrapolated_vertices_warn_in_text_mode_and_are_excluded(capsys):
    path = str(shared_csv("porian2024_isoflop_points.csv"))
    main(["fit", path, *_PORIAN_KAPLAN_ARGS])  # returns on success
    out, err = capsys.readouterr()
    for budget in ("1.25e+16", "2.5e+16", "5e+16"):
        assert f"warning: excluded budget {budget}" in err
    assert "--keep-extrapolated keeps it" in err and "keep_extrapolated" not in err  # flags, not parameters
    assert "1.25e+16" not in out  # not in the vertex table
    d = json.loads(run_ok(["fit", path, *_PORIAN_KAPLAN_ARGS, "--json"]).stdout)
    assert d["fit"]["a"] == pytest.approx(0.865, abs=0.01)
    assert d["fit"]["skipped_budgets"] == [1.25e16, 2.5e16, 5e16] and len(d["fit"]["warnings"]) == 3
    kept = json.loads(run_ok(["fit", path, *_PORIAN_KAPLAN_ARGS, "--keep-extrapolated", "--json"]).stdout)
    assert len(kept["fit"]["vertices"]) == 11 and kept["fit"]["a"] > 1.1


def _preset_csv(tmp_path, ratios, name):
    from tests.laws.test_approach3 import preset_table

    t = preset_table(ratios)
    rows = ["N,D,loss"] + [f"{float(n)!r},{float(d)!r},{float(y)!r}"
                           for n, d, y in zip(t.n_params, t.n_tokens, t.loss, strict=True)]
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n")
    return path


def test_one_ray_design_exits_2_with_one_line(tmp_path, capsys):
    path = _preset_csv(tmp_path, np.full(6, 20.0), "ray.csv")
    assert "one tokens-per-parameter ray" in exit2(["fit", str(path), "--at", "1e22"], capsys)


def test_varied_design_recovers_the_preset_exponents(tmp_path):
    from tests.laws.test_approach3 import EXPONENT_TOL, VARIED_RATIOS

    d = json.loads(run_ok(["fit", str(_preset_csv(tmp_path, VARIED_RATIOS, "v.csv")), "--json"]).stdout)
    assert d["fit"]["params"]["alpha"] == pytest.approx(0.34, abs=EXPONENT_TOL)
    assert d["fit"]["params"]["beta"] == pytest.approx(0.28, abs=EXPONENT_TOL)


def test_duplicate_rows_dropped_unless_keep_duplicates(tmp_path, capsys):
    path = tmp_path / "dup.csv"
    lines = _chinchilla_csv(tmp_path).read_text().splitlines()
    path.write_text("\n".join(lines + lines[1:4]) + "\n")  # three rows twice
    main(["fit", str(path), "--json"])
    out, err = capsys.readouterr()
    assert json.loads(out)["n_points"] == 15
    assert "dropped 3 exact duplicate" in err and "--keep-duplicates" in err
    assert json.loads(run_ok(["fit", str(path), "--keep-duplicates", "--json"]).stdout)["n_points"] == 18


def test_saturating_c_fits_from_compute_and_loss_alone(tmp_path, capsys):
    path = tmp_path / "c.csv"
    c = np.logspace(18, 23, 8)
    path.write_text("compute_flops,loss\n" + "".join(f"{x!r},{1.8 + 50 * x**-0.08!r}\n" for x in c.tolist()))
    d = json.loads(run_ok(["fit", str(path), "--form", "saturating_c", "--json"]).stdout)
    assert d["fit"]["params"]["alpha"] == pytest.approx(0.08, rel=1e-6)
    assert "needs N (parameters) and D (tokens)" in exit2(["fit", str(path)], capsys)
    assert "Approach 2 needs N" in exit2(["fit", str(path), "--approach", "2"], capsys)


def test_predict_kaplan_single_variable_loss_from_params_alone():
    d = json.loads(run_ok(["predict", "--law", "kaplan2020", "--params", "1e9", "--json"]).stdout)
    # Kaplan et al. 2020 eq. 1.1: L(N) = (8.8e13 / N)^0.076
    assert d["loss"]["loss"] == pytest.approx((8.8e13 / 1e9) ** 0.076, rel=1e-12)
    assert d["loss"]["n_tokens"] is None and d["loss"]["compute_flops"] is None
    assert "= 2.3756" in run_ok(["predict", "--law", "kaplan2020", "--params", "1e9"]).stdout


def test_predict_one_variable_on_a_joint_law_is_one_line(capsys):
    assert "n_params and n_tokens" in exit2(["predict", "--law", "epoch2024", "--params", "7B"], capsys)


def test_laws_labels_the_default_and_the_rounded_chinchilla():
    d = {x["name"]: x for x in json.loads(run_ok(["laws", "--json"]).stdout)}
    assert d["epoch2024"]["default"] and not d["chinchilla"]["default"]
    assert d["chinchilla"]["description"] == "Hoffmann et al. eq. 10, rounded as printed"
    text = " ".join(run_ok(["laws"]).stdout.split())
    assert "epoch2024 (default)" in text and "rounded as printed" in text


def test_fit_warnings_in_json_also_print_in_text_mode_on_stderr(tmp_path):
    path = isoflop_csv(tmp_path)
    rows = path.read_text().splitlines()
    rows += [f"x{i},{n},{1e22 / (6 * n)!r},1e22,{3.0 - 0.01 * i},1e22,done" for i, n in enumerate((1e9, 2e9))]
    path.write_text("\n".join(rows) + "\n")  # a budget with 2 sizes: skipped, with a warning
    args = ["fit", str(path), "--approach", "2", "--skip-bad-budgets"]
    d = json.loads(run_ok([*args, "--json"]).stdout)
    warnings = [n for n in d["fit"]["notes"] if n not in d["notes"]]
    assert any("skipped budget 1e+22" in w for w in warnings)
    res = runner.invoke(app, args)  # click >= 8.2 keeps stderr apart from stdout
    assert res.exit_code == 0, res.output
    for w in warnings:
        assert w in " ".join(res.stderr.split()), (w, res.stderr)
        assert w not in res.stdout


def test_hand_written_allocation_json_that_misspends_compute_is_refused(tmp_path, capsys):
    path = tmp_path / "hand.json"
    path.write_text(json.dumps({"approach": 2, "n_law": {"coef": 0.5, "exponent": 0.46},
                                "d_law": {"coef": 0.3, "exponent": 0.54}}))  # 6ND = 0.9 C
    assert "6ND = 0.9 C" in exit2(["predict", "--law", str(path), "--compute", "1e22"], capsys)
    assert "6ND = 0.9 C" in exit2(["plan", "--law", str(path), "--compute", "1e22"], capsys)
