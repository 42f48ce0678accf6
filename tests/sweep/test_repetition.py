"""Repetition experiments (issue 14): `train --unique-tokens`, `sweep run --repetitions`, the R_D* fit."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from scalinglab.cli.app import main
from scalinglab.data.loader import BatchLoader
from tests.conftest import exit2

TINY = ["--d-model", "32", "--n-layer", "1", "--n-head", "2", "--seq-len", "64", "--batch-size", "4",
        "--no-progress"]


@pytest.fixture(scope="module")
def corpus_1mb(tmp_path_factory):
    from scalinglab.data.prepare import prepare

    out = tmp_path_factory.mktemp("rep-corpus") / "stdlib"
    prepare(["stdlib"], out, max_bytes=1_000_000)
    return out


def test_unique_tokens_serve_a_fixed_subset(corpus_1mb):
    """U tokens -> U // seq_len windows, the same ones every epoch; epochs count passes over them."""
    loader = BatchLoader([corpus_1mb], 64, seed=3, unique_tokens=64 * 10)
    seen = [tuple(loader.next_batch(5)[0][:, 0].tolist()) for _ in range(8)]  # 40 windows = 4 epochs
    first, later = set(sum(seen[:2], ())), set(sum(seen[2:], ()))
    assert loader.streams[0].n == 10 and loader.epochs[0] == 4.0
    assert later <= first  # no window outside the subset ever appears
    again = BatchLoader([corpus_1mb], 64, seed=3, unique_tokens=64 * 10)
    assert np.array_equal(again.streams[0].subset, loader.streams[0].subset)


def test_train_unique_tokens_counts_epochs(corpus_1mb, tmp_path):
    out = tmp_path / "run"
    main(["train", *TINY, "--tokens", "5120", "--unique-tokens", "1280", "--data", str(corpus_1mb),
          "--out", str(out)])
    final = json.loads((out / "final.json").read_text())
    assert final["epochs"][0] == pytest.approx(4.0)
    assert json.loads((out / "config.json").read_text())["unique_tokens"] == 1280


def test_unique_tokens_larger_than_corpus_exits_2(corpus_1mb, tmp_path, capsys):
    out = tmp_path / "run"
    line = exit2(["train", *TINY, "--tokens", "5120", "--unique-tokens", "100M", "--data", str(corpus_1mb),
                  "--out", str(out)], capsys)
    assert "exceeds the corpus" in line
    assert not out.exists()  # nothing written


@pytest.mark.slow
def test_repetition_sweep_end_to_end(corpus_1mb, tmp_path, capsys):
    """Five epoch counts at fixed C and N on CPU; only asserts that 16 epochs end worse than 1 (the fitted
    R_D* and its interval are printed for the note, not asserted)."""
    out = tmp_path / "sweep"
    main(["sweep", "run", "--budgets", "8e9", "--repetitions", "1,2,4,8,16", "--data", str(corpus_1mb),
          "--out", str(out), "--json"])
    doc = json.loads(capsys.readouterr().out)
    losses = dict(zip(doc["epochs"], doc["losses"], strict=True))
    assert len(losses) == 5 and doc["statuses"].get("done") == 5
    assert losses[max(losses)] > losses[min(losses)]
    fit = doc["fit"]
    print(f"R_D* {fit['params']['rd_star']:.4g} interval {fit['intervals']['rd_star']} weak "
          f"{fit['weakly_identified']['rd_star']}; losses {doc['losses']}")
    assert "Repeated data" in (out / "repetition.svg").read_text()
    main(["sweep", "export", str(out)])
    with open(out / "runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {"unique_tokens", "epochs", "r_d"} <= rows[0].keys()
    assert sorted(round(float(r["epochs"])) for r in rows) == [1, 2, 4, 8, 16]


def test_repetition_cap_larger_than_corpus_exits_2(corpus_1mb, tmp_path, capsys):
    out = tmp_path / "sweep"
    line = exit2(["sweep", "run", "--budgets", "1e13", "--repetitions", "1,2", "--data", str(corpus_1mb),
                  "--out", str(out)], capsys)
    assert "unique tokens" in line and not (out / "registry.sqlite").exists()
