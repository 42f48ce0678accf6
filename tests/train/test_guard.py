"""Divergence guard: a slow climb is caught (the spike rule alone misses it), healthy noisy curves are not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scalinglab.train import checkpoint as ckpt
from scalinglab.train import run
from scalinglab.train.guard import DivergenceGuard
from scalinglab.train.loop import Trainer
from tests.train.conftest import tiny_config


def _first_alarm(guard: DivergenceGuard, losses) -> tuple[int, str] | None:
    for step, loss in enumerate(losses, start=1):
        reason = guard.check(float(loss))
        if reason is not None:
            return step, reason
    return None


def _climb(n=400):
    """Learns for 100 steps (5.5 -> 3.0), then climbs 1% a step: a run that never spikes but is lost."""
    down = 3.0 + 2.5 * np.exp(-np.arange(100) / 20)
    return np.concatenate([down, down[-1] * 1.01 ** np.arange(1, n - 99)])


def test_slow_climb_is_caught_only_by_the_drift_rule():
    losses = _climb()
    assert _first_alarm(DivergenceGuard(3.0, 50, reference=math.log(257)), losses) is None  # spikes: none
    step, reason = _first_alarm(DivergenceGuard(3.0, 50, reference=math.log(257), drift_factor=1.5), losses)
    assert "climbed" in reason
    # The best 50-step mean sits near 3.0 (around step 100); the window mean passes 1.5x of it well before the
    # end, and only after the climb has begun.
    assert 150 < step < 250
    window_mean = losses[step - 50:step].mean()
    assert window_mean > 1.5 * losses[50:150].min() * 0.99


def test_healthy_noisy_curves_and_recovered_spikes_do_not_trip():
    rng = np.random.default_rng(0)
    t = np.arange(3000)
    for trial in range(5):
        curve = 2.5 + 3.0 * np.exp(-t / (100 + 100 * trial))
        noisy = curve * rng.lognormal(0, 0.1, size=t.size)  # ~10% step-to-step noise
        # short spikes that recover (below the spike rule)
        noisy[rng.choice(t.size, 10, replace=False)] *= 2.0
        guard = DivergenceGuard(3.0, 50, reference=math.log(257), drift_factor=1.5)
        assert _first_alarm(guard, noisy) is None, trial


def test_state_round_trip_keeps_the_best_mean():
    losses = _climb()
    a = DivergenceGuard(3.0, 50, reference=5.5, drift_factor=1.5)
    assert _first_alarm(a, losses[:160]) is None
    b = DivergenceGuard(3.0, 50, reference=5.5, drift_factor=1.5)
    b.load_state_dict(a.state_dict())
    assert b.best_mean == a.best_mean < 3.1
    assert [a.check(x) for x in losses[160:]] == [b.check(x) for x in losses[160:]]
    legacy = DivergenceGuard(3.0, 50, reference=5.5, drift_factor=1.5)
    legacy.load_state_dict({"history": [3.0] * 50})  # a checkpoint from before the drift rule
    assert legacy.best_mean == math.inf and legacy.check(3.0) is None
    assert legacy.best_mean == pytest.approx(3.0)


@pytest.fixture
def climbing_loss(monkeypatch):
    """The loop sees the real loss times 1.15^step: a steady climb, never 3x the running mean."""
    real = Trainer.accumulate

    def climbing(self):
        return real(self) * 1.15 ** self.step

    monkeypatch.setattr(Trainer, "accumulate", climbing)


def test_a_climbing_run_stops_as_diverged_with_earlier_checkpoints_intact(corpus, tmp_path, climbing_loss):
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 30, spike_window=5, checkpoint_every=2, keep_last=None,
                      eval_every=None)
    result = run(cfg, tmp_path / "climb")
    assert result.status == "diverged" and "climbed" in result.final["diverged_reason"]
    assert 6 <= result.diverged_step < 30
    kept = ckpt.list_checkpoints(tmp_path / "climb")
    assert kept and all(ckpt.read(p).step < result.diverged_step for p in kept)
    # the spike rule alone misses it
    assert run(cfg.replace(drift_factor=None), tmp_path / "off").status == "done"


def test_short_windows_use_their_own_mean():
    """With a window shorter than min_history, the spike rule still moves off the ln(vocab) reference."""
    guard = DivergenceGuard(3.0, 5, reference=5.5)
    assert _first_alarm(guard, [6, 7, 8, 9, 10, 20]) is None  # 20 is 2.5x the mean 8 (3.6x the reference)
    assert "running mean" in guard.check(50.0)
