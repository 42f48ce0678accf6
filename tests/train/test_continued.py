"""Continued pretraining (issue 14): `train --init-from RUN --data NEW [--replay F] [--rewarm-steps K]`.

Old domain: Python stdlib sources. New domain: a generated corpus of arithmetic lines, far enough from Python
that training on it alone forgets the old domain measurably within a few dozen steps.
"""

from __future__ import annotations

import json
import random

import pytest

from scalinglab.cli.app import main
from tests.conftest import exit2
from tests.data.conftest import write_texts

TINY = ["--seq-len", "64", "--batch-size", "8", "--eval-every", "10", "--no-progress", "--lr", "3e-3"]
STEPS_TOKENS = str(64 * 8 * 40)  # 40 steps


@pytest.fixture(scope="module")
def domains(tmp_path_factory):
    from scalinglab.data.prepare import prepare

    root = tmp_path_factory.mktemp("domains")
    old = root / "old"
    prepare(["stdlib"], old, max_bytes=400_000)
    rng = random.Random(0)
    texts = {f"arith{i}.txt": "\n".join(f"{a} + {b} = {a + b}" for a, b in
                                        ((rng.randrange(1000), rng.randrange(1000)) for _ in range(400)))
             for i in range(40)}
    new = root / "new"
    prepare([str(write_texts(root / "arith", texts))], new)
    parent = root / "parent"
    main(["train", "--d-model", "64", "--n-layer", "2", "--n-head", "4", *TINY, "--tokens", STEPS_TOKENS,
          "--data", str(old), "--out", str(parent)])
    return old, new, parent


def _child(domains, out, *extra):
    old, new, parent = domains
    main(["train", "--init-from", str(parent), "--data", str(new), *TINY, "--tokens", STEPS_TOKENS,
          "--rewarm-steps", "4", *extra, "--out", str(out)])
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "val_loss_old" in r]


def test_replay_lowers_old_domain_loss(domains, tmp_path):
    plain = _child(domains, tmp_path / "plain")
    replay = _child(domains, tmp_path / "replay", "--replay", "0.1")
    assert len(plain) >= 4 and all("val_loss" in r for r in plain)  # old and new domain at every eval
    parent_final = json.loads((domains[2] / "final.json").read_text())["val_loss"]
    print(f"old-domain val loss: parent {parent_final:.4f}; no replay {plain[-1]['val_loss_old']:.4f}"
          f", with 10% replay {replay[-1]['val_loss_old']:.4f}; new-domain {plain[-1]['val_loss']:.4f} vs "
          f"{replay[-1]['val_loss']:.4f}")
    assert replay[-1]["val_loss_old"] < plain[-1]["val_loss_old"]
    lineage = json.loads((tmp_path / "plain" / "parent.json").read_text())
    assert lineage["init_from"] == str(domains[2]) and lineage["step"] == 40
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["init_from"] == str(domains[2])
    main(["report", str(tmp_path / "plain"), "--compare", str(tmp_path / "replay")])
    svg = (tmp_path / "plain" / "continued.svg").read_text()
    assert svg.startswith("<svg") and "old domain" in svg and "replay" in svg


def test_init_from_another_shape_or_tokenizer_exits_2(domains, tmp_path, capsys):
    old, new, parent = domains
    out = tmp_path / "bad"
    line = exit2(["train", "--init-from", str(parent), "--d-model", "32", "--n-layer", "2", "--n-head", "4",
                  *TINY, "--tokens", STEPS_TOKENS, "--data", str(new), "--out", str(out)], capsys)
    assert "another model shape" in line and not out.exists()
    line = exit2(["train", "--replay", "0.1", "--depth", "1", *TINY, "--tokens", STEPS_TOKENS,
                  "--data", str(new), "--out", str(out)], capsys)
    assert "init_from" in line and not out.exists()
