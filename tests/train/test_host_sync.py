"""No host synchronisation inside a step (issue 12's hot path): the loop reads losses and gradient norms back
every ``log_every`` steps (and before evals, checkpoints and the end), checks them with the guard in step
order, and the run is the same as one read back every step."""

from __future__ import annotations

import traceback
from pathlib import Path

import torch

import scalinglab
from scalinglab.train import checkpoint as ckpt
from scalinglab.train import run
from scalinglab.train.loop import Trainer
from scalinglab.train.rundir import read_metrics
from tests.train.conftest import tiny_config
from tests.train.test_guard import climbing_loss  # noqa: F401 -- fixture

SRC = str(Path(scalinglab.__file__).parent)


def test_deferred_read_back_is_the_same_run(corpus, tmp_path):
    torch.set_num_threads(1)
    base = dict(n_tokens=64 * 8 * 12, eval_every=6, checkpoint_every=4, keep_last=None)
    every = run(tiny_config(corpus, log_every=1, **base), tmp_path / "every")
    batched = run(tiny_config(corpus, log_every=5, **base), tmp_path / "batched")
    rows = {r["step"]: r for r in read_metrics(tmp_path / "every") if "loss" in r}
    logged = [r for r in read_metrics(tmp_path / "batched") if "loss" in r]
    assert [r["step"] for r in logged] == [5, 10, 12]  # every 5th step and the last
    for r in logged:
        assert (r["loss"], r["grad_norm"], r["lr"]) == (rows[r["step"]]["loss"], rows[r["step"]]["grad_norm"],
                                                      rows[r["step"]]["lr"])
    assert batched.val_loss == every.val_loss
    a, b = ckpt.list_checkpoints(tmp_path / "every"), ckpt.list_checkpoints(tmp_path / "batched")
    assert [p.name for p in a] == [p.name for p in b]  # steps 4 and 8 (and the final 12) written alike
    for pa, pb in zip(a, b, strict=True):
        sa, sb = ckpt.read(pa), ckpt.read(pb)
        assert all(torch.equal(sa.tensors[k], sb.tensors[k]) for k in sa.tensors)


def test_a_deferred_step_reads_nothing_back(corpus, tmp_path, monkeypatch):
    """Between read-backs, no scalinglab code calls .item(), .tolist() or float() on a tensor (torch's own
    CPU step counters inside AdamW are host tensors even on CUDA, so they are not counted)."""
    trainer = Trainer(tiny_config(corpus, log_every=4, eval_every=None), tmp_path)
    calls: list[str] = []

    def spy(name):
        real = getattr(torch.Tensor, name)

        def wrapped(self, *args, **kwargs):
            frames = [f for f in traceback.extract_stack()[:-1] if f.filename.startswith(SRC)]
            if frames:
                calls.append(f"{name} at {frames[-1].filename}:{frames[-1].lineno}")
            return real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapped)

    for name in ("item", "tolist", "__float__"):
        spy(name)
    for _ in range(3):
        trainer.step_async()
    assert calls == []
    assert not trainer.sync_due() and len(trainer.unsettled) == 3
    trainer.step_async()
    assert trainer.sync_due()
    recs = trainer.settle()
    assert [r["step"] for r in recs] == [1, 2, 3, 4] and calls  # the read-back happens here, once per window


def test_divergence_is_caught_at_its_step_when_read_back_late(corpus, tmp_path, climbing_loss):  # noqa: F811
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 30, spike_window=5, checkpoint_every=2, keep_last=None,
                      eval_every=None)
    every = run(cfg, tmp_path / "every")
    late = run(cfg.replace(log_every=7), tmp_path / "late")
    assert every.status == late.status == "diverged"
    assert late.diverged_step == every.diverged_step
    kept = ckpt.list_checkpoints(tmp_path / "late")
    assert kept and all(ckpt.read(p).step < late.diverged_step for p in kept)


def test_a_checkpoint_is_written_once_the_step_after_it_is_sane(corpus, tmp_path, climbing_loss):  # noqa: F811
    """Read back every 10 steps, checkpoints every 4: each checkpoint is written when the first step after it
    is read back sane, so a divergence later in that window keeps it (as with read-back every step)."""
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 30, spike_window=5, checkpoint_every=4, keep_last=None,
                      eval_every=None)
    every = run(cfg, tmp_path / "every")
    late = run(cfg.replace(log_every=10), tmp_path / "late")
    assert late.diverged_step == every.diverged_step and late.summary.step == every.summary.step
    names = [p.name for p in ckpt.list_checkpoints(tmp_path / "every")]
    assert names and [p.name for p in ckpt.list_checkpoints(tmp_path / "late")] == names
