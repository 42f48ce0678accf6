"""Prediction intervals of a bootstrapped law (laws/intervals.py), and `predict` on Epoch AI's Chinchilla
data (issue 15's acceptance: both intervals; wider from a random half of the points; the point equals the
unbootstrapped fit)."""

from __future__ import annotations

import csv
import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from scalinglab.cli.app import main
from scalinglab.laws.intervals import mixture_quantiles, parse_levels
from tests.conftest import exit2, shared_csv

N_BOOT = 100  # enough for 80 % / 95 % percentile intervals to order full vs half data (the test's claim)


def test_mixture_of_one_component_is_the_normal_quantile():
    # one centre: the mixture is N(c, sd^2), whose quantiles are c + sd * z (bisection to ~1e-17)
    q = mixture_quantiles(np.array([0.3]), 0.02, [0.025, 0.975])
    z = NormalDist().inv_cdf(0.975)
    assert q == pytest.approx([0.3 - 0.02 * z, 0.3 + 0.02 * z], abs=1e-12)


def test_mixture_quantiles_bracket_the_centres_and_grow_with_sd():
    c = np.linspace(-0.01, 0.01, 51)
    narrow = mixture_quantiles(c, 1e-4, [0.1, 0.9])
    wide = mixture_quantiles(c, 1e-2, [0.1, 0.9])
    assert -0.01 < narrow[0] < narrow[1] < 0.01
    assert wide[0] < narrow[0] and wide[1] > narrow[1]


def test_parse_levels_refuses_out_of_range():
    assert parse_levels("0.95,0.8") == (0.8, 0.95)
    for bad in ("1.5", "0", "x", ""):
        with pytest.raises(ValueError):
            parse_levels(bad)


def _write_epoch(tmp_path, name: str, half: bool) -> str:
    """The 240 points Epoch keeps (5 highest losses dropped), or a fixed random half of them, as a CSV."""
    with shared_csv("epoch_chinchilla_extracted.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    rows = sorted(rows, key=lambda r: float(r["loss"]))[:-5]
    if half:
        keep = np.random.default_rng(0).permutation(len(rows))[: len(rows) // 2]
        rows = [rows[i] for i in sorted(keep)]
    path = tmp_path / name
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Model Size", "Training FLOP", "loss"])
        w.writerows([r["Model Size"], r["Training FLOP"], r["loss"]] for r in rows)
    return str(path)


def _run(argv, capsys) -> dict:
    capsys.readouterr()
    main(list(argv))
    return json.loads(capsys.readouterr().out)


def _width(pair, key):
    lo, hi = pair[key]
    return math.log(hi) - math.log(lo)


@pytest.fixture(scope="module")
def epoch_fits(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("epoch")
    full, half = _write_epoch(tmp, "full.csv", False), _write_epoch(tmp, "half.csv", True)
    out = {}
    for name, data, boot in (("boot", full, N_BOOT), ("plain", full, 0), ("half", half, N_BOOT)):
        path = tmp / f"{name}.json"
        main(["fit", data, "--bootstrap", str(boot), "--out", str(path), "--json"])
        out[name] = str(path)
    return out


def test_epoch_predict_intervals_full_vs_half(epoch_fits, capsys):
    query = ["--params", "7B", "--tokens", "2T", "--compute", "1e24", "--level", "0.8,0.95", "--json"]
    full = _run(["predict", "--law", epoch_fits["boot"], *query], capsys)
    half = _run(["predict", "--law", epoch_fits["half"], *query], capsys)
    plain = _run(["predict", "--law", epoch_fits["plain"], "--params", "7B", "--tokens", "2T", "--json"],
                 capsys)
    assert "intervals" not in plain["loss"]  # no samples, no intervals
    li_full, li_half = full["loss"]["intervals"], half["loss"]["intervals"]
    # the point is the unbootstrapped fit's own prediction (same data, same deterministic fit)
    assert li_full["point"] == full["loss"]["loss"] == plain["loss"]["loss"]
    assert li_full["residual_sd"] > 0
    for pf, ph in zip(li_full["intervals"], li_half["intervals"], strict=True):
        assert pf["ci"][0] < li_full["point"] < pf["ci"][1]
        assert pf["pi"][0] < pf["ci"][0] and pf["ci"][1] < pf["pi"][1]  # the PI adds run scatter
        assert _width(ph, "ci") > _width(pf, "ci") and _width(ph, "pi") > _width(pf, "pi")
    at_full, at_half = full["intervals_at_compute"][0], half["intervals_at_compute"][0]
    for key in ("n_params", "n_tokens"):
        for pf, ph in zip(at_full[key]["intervals"], at_half[key]["intervals"], strict=True):
            assert _width(ph, "ci") > _width(pf, "ci")
    print(f"\nEpoch 7B/2T: full {li_full['intervals']}\n half {li_half['intervals']}")


def test_predict_text_prints_both_intervals(epoch_fits, capsys):
    capsys.readouterr()
    main(["predict", "--law", epoch_fits["boot"], "--params", "7B", "--tokens", "2T"])
    out = capsys.readouterr().out
    assert "95%: confidence interval" in out and "prediction interval" in out


def test_level_on_a_law_without_samples_is_one_line(capsys):
    line = exit2(["predict", "--law", "epoch2024", "--compute", "1e24", "--level", "0.9"], capsys)
    assert "bootstrap samples" in line


def test_calibrate_without_bootstrap_is_one_line(capsys):
    path = shared_csv("epoch_chinchilla_extracted.csv")
    line = exit2(["fit", str(path), "--drop-top-loss", "5", "--calibrate"], capsys)
    assert "--calibrate needs" in line and "--bootstrap" in line
