"""`scalinglab fit-downstream` and `scalinglab fit-coverage`: JSON and text output, lm-eval 0.4 results, and
the one-line exit-2 contract for bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalinglab.cli.app import app
from scalinglab.errors import ScalingLabError
from scalinglab.laws.downstream_forms import get_downstream_form
from scalinglab.laws.downstream_io import read_samples_csv
from tests.conftest import exit2

runner = CliRunner()
SIGMOID = get_downstream_form("sigmoid_compute")


def _models(n=8, seed=0):
    rng = np.random.default_rng(seed)
    n_params = np.logspace(7.5, 9.5, n)
    n_tokens = 20 * n_params
    acc = SIGMOID.predict(np.array([0.8, 1.5, 18.5]), np.log10(6 * n_params * n_tokens), 0.25)
    return n_params, n_tokens, np.clip(acc + rng.normal(0, 0.004, n), 0, 1)


def _evals_csv(tmp_path, acc_scale=1.0, task="mmlu"):
    n, d, acc = _models()
    p = tmp_path / "evals.csv"
    rows = [f"model,N,D,loss,{task}"] + [f"m{i},{a:.6g},{b:.6g},{3 - 0.1 * i},{acc_scale * c:.6f}"
                                     for i, (a, b, c) in enumerate(zip(n, d, acc, strict=True))]
    p.write_text("\n".join(rows) + "\n")
    return p


def _lm_eval_dir(tmp_path, layout="0.4"):
    n, d, acc = _models()
    root = tmp_path / "results"
    for i, a in enumerate(acc):
        entry = ({"acc,none": a, "acc_stderr,none": 0.004, "alias": "mmlu"} if layout == "0.4"
                 else {"acc": a, "acc_stderr": 0.004})
        folder = root / f"m{i}"
        folder.mkdir(parents=True)
        doc = {"results": {"mmlu": entry}, "config": {"model_args": f"pretrained=m{i},dtype=float32"}}
        (folder / "results_2024-06-01T00-00-00.json").write_text(json.dumps(doc))
    models = tmp_path / "models.csv"
    models.write_text("model,N,D\n" + "".join(f"m{i},{a:.6g},{b:.6g}\n"
                                              for i, (a, b) in enumerate(zip(n, d, strict=True))))
    return root, models


def test_fit_downstream_csv_json_with_backtest(tmp_path):
    res = runner.invoke(app, ["fit-downstream", str(_evals_csv(tmp_path)), "--x", "compute",
                              "--metric", "mmlu", "--holdout-top", "2", "--bootstrap", "20", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    fit = d["fits"][0]
    assert fit["task"] == "mmlu" and fit["chance"] == 0.25 and fit["status"] == "fitted"
    assert fit["params"]["ceiling"] == pytest.approx(0.8, abs=0.05)
    rows = d["backtests"][0]["rows"]
    assert len(rows) == 2 and max(r["rel_error"] for r in rows) < 0.05


def test_fit_downstream_reads_lm_eval_results(tmp_path):
    root, models = _lm_eval_dir(tmp_path)
    res = runner.invoke(app, ["fit-downstream", str(root), "--models", str(models), "--x", "compute",
                              "--bootstrap", "0", "--json"])
    assert res.exit_code == 0, res.output
    fit = json.loads(res.stdout)["fits"][0]
    assert fit["task"] == "mmlu" and len(fit["x"]) == 8
    assert fit["accuracy_stderr"] == pytest.approx([0.004] * 8)  # acc_stderr,none is read, not assumed


def test_fit_downstream_text_prints_warnings(tmp_path):
    res = runner.invoke(app, ["fit-downstream", str(_evals_csv(tmp_path, task="mytask")), "--x", "loss",
                              "--form", "gadre", "--bootstrap", "0"])
    assert res.exit_code == 0, res.output
    assert "Downstream fits" in res.stdout
    assert "assumed 1000 items" in res.output  # the JSON's warning also reaches a text-mode user


def _samples_csv(tmp_path, n=8):
    rng = np.random.default_rng(0)
    p = tmp_path / "samples.csv"
    lines = ["problem,sample,correct"]
    for i, rate in enumerate(rng.beta(1, 3, 60)):
        lines += [f"q{i},{s},{int(rng.random() < rate)}" for s in range(n)]
    p.write_text("\n".join(lines) + "\n")
    return p


def test_fit_coverage_json(tmp_path):
    res = runner.invoke(app, ["fit-coverage", str(_samples_csv(tmp_path, 16)), "--fit-k", "4", "--bootstrap",
                              "10", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["n_problems"] == 60 and [r["k"] for r in d["curve"]] == [1, 2, 4, 8, 16]
    assert d["backtest"]["fit_k"] == 4 and d["backtest"]["target_k"] == 16
    meas = [r["measured"] for r in d["curve"]]
    assert meas == sorted(meas)


@pytest.mark.parametrize("case", ["percent", "too_few", "missing_metric", "lm_eval_03", "c_gt_n", "k_gt_n",
                                  "bad_correct", "no_file"])
def test_bad_input_exits_2_with_one_line(case, tmp_path, capsys):
    if case == "percent":
        argv = ["fit-downstream", str(_evals_csv(tmp_path, acc_scale=100)), "--x", "compute"]
    elif case == "too_few":
        p = _evals_csv(tmp_path)
        p.write_text("\n".join(p.read_text().splitlines()[:4]) + "\n")
        argv = ["fit-downstream", str(p), "--x", "compute"]
    elif case == "missing_metric":
        argv = ["fit-downstream", str(_evals_csv(tmp_path)), "--metric", "gsm8k"]
    elif case == "lm_eval_03":
        root, models = _lm_eval_dir(tmp_path, layout="0.3")
        argv = ["fit-downstream", str(root), "--models", str(models), "--x", "compute"]
    elif case == "c_gt_n":
        p = tmp_path / "counts.csv"
        p.write_text("problem,n,c\na,4,5\nb,4,1\n")
        argv = ["fit-coverage", str(p)]
    elif case == "k_gt_n":
        argv = ["fit-coverage", str(_samples_csv(tmp_path)), "--k", "1", "--k", "64"]
    elif case == "bad_correct":
        p = tmp_path / "s.csv"
        p.write_text("problem,sample,correct\na,0,yes\n")
        argv = ["fit-coverage", str(p)]
    else:
        argv = ["fit-coverage", str(tmp_path / "absent.csv")]
    line = exit2(argv, capsys)
    assert len(line) > 20


def test_fit_downstream_without_the_x_column_says_which_flag(tmp_path, capsys):
    p = tmp_path / "e.csv"
    p.write_text("model,mmlu\n" + "".join(f"m{i},0.{30 + i}\n" for i in range(6)))
    assert "--loss-col" in exit2(["fit-downstream", str(p), "--x", "loss"], capsys)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(text=st.text(alphabet=st.sampled_from("problem,sample,correct,n,c\n01-.xé\"a "), max_size=200))
def test_samples_reader_fails_cleanly_on_garbage(text, tmp_path):
    p = tmp_path / "g.csv"
    p.write_text(text, encoding="utf-8")
    try:
        table = read_samples_csv(p)
    except ScalingLabError:
        return
    assert np.all(table.c <= table.n) and np.all(table.c >= 0)


def test_out_and_html_are_written(tmp_path):
    out, html = tmp_path / "cov.json", tmp_path / "cov.html"
    res = runner.invoke(app, ["fit-coverage", str(_samples_csv(tmp_path, 16)), "--bootstrap", "5", "--out",
                              str(out), "--html", str(html)])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["n_problems"] == 60
    page = html.read_text()
    assert page.count("<svg") == 1 and "<script" not in page
    res = runner.invoke(app, ["fit-downstream", str(_evals_csv(tmp_path)), "--x", "compute",
                              "--bootstrap", "5", "--html", str(html)])
    assert res.exit_code == 0, res.output
    assert "Downstream accuracy" in html.read_text()
