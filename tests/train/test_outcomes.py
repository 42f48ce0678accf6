"""Whole runs: a tiny model learns the default corpus; an absurd learning rate is caught as divergence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from scalinglab.data.loader import TokenSplit
from scalinglab.train import checkpoint as ckpt
from scalinglab.train import run
from tests.train.conftest import tiny_config


def _unigram_entropy(data_dir) -> float:
    """Entropy (nats) of the val split's token frequencies: the loss of the best context-free predictor."""
    val = np.concatenate([np.asarray(s) for s in TokenSplit(data_dir, "val").shards])
    p = np.bincount(val) / len(val)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_tiny_model_beats_the_unigram_entropy(corpus, tmp_path):
    cfg = tiny_config(corpus, model={"seq_len": 128}, n_tokens=200_000, batch_size=8, lr=6e-3,
                      eval_every=None, checkpoint_every=None, eval_tokens=32_768)
    result = run(cfg, tmp_path / "learn")
    entropy = _unigram_entropy(corpus)
    assert result.status == "done" and result.final["n_tokens"] >= 190_000
    assert result.val_loss < entropy - 0.5, (result.val_loss, entropy)
    final = json.loads((tmp_path / "learn" / "final.json").read_text())
    assert final["n_params"] > final["n_params_non_embedding"] > 0
    assert final["compute_flops"] > final["compute_flops_6nd"] == pytest.approx(
        6 * final["n_params_active"] * final["n_tokens"])


def test_absurd_learning_rate_diverges_with_nonzero_exit(corpus, tmp_path, capsys):
    from scalinglab.cli.app import main

    run_dir = tmp_path / "boom"
    # lr rises 1.0, 2.0, ... per step (warmup longer than the run): sane for a few steps, then blows up.
    args = ["train", "--d-model", "64", "--n-layer", "2", "--n-head", "4", "--seq-len", "64", "--batch-size",
            "8",
            "--tokens", str(64 * 8 * 60), "--data", str(corpus), "--lr", "1e4", "--set",
            "warmup_steps=100000",
            "--checkpoint-every", "1", "--keep-last", "3", "--no-progress", "--json", "--out", str(run_dir)]
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    final = json.loads((run_dir / "final.json").read_text())
    assert final["status"] == "diverged" and 1 < final["diverged_step"] < 60
    assert "diverged" in capsys.readouterr().err
    kept = ckpt.list_checkpoints(run_dir)
    # its successor failed the guard
    assert kept and kept[-1].name == f"step_{final['diverged_step'] - 2:07d}"
    snap = ckpt.read(kept[-1])  # hash verified: intact
    assert all(torch.isfinite(t).all() for k, t in snap.tensors.items() if k.startswith("model."))
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(x) for x in losses)


def test_tensorboard_is_optional(corpus, tmp_path, caplog):
    """Asked for TensorBoard: mirrored there when installed, otherwise a warning and metrics.jsonl as
    always."""
    import importlib.util

    result = run(tiny_config(corpus, n_tokens=64 * 8 * 3, tensorboard=True, checkpoint_every=None),
                 tmp_path / "tb")
    assert result.status == "done" and len((tmp_path / "tb" / "metrics.jsonl").read_text().splitlines()) >= 3
    if importlib.util.find_spec("tensorboard") is None:
        assert "tensorboard is not installed" in caplog.text
    else:
        assert any((tmp_path / "tb" / "tensorboard").iterdir())
