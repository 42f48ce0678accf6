"""Divergence guard: stop a run whose loss is not finite, spikes far above its running mean, or climbs for
good.

Loss spikes that grow without recovering are the usual failure of a too-high learning rate (Wortsman et al.
2023, "Small-scale proxies for large-scale Transformer training instabilities"); catching them early keeps the
last good checkpoint as the run's record instead of burning the rest of the budget.

Three rules, checked in order on every step's loss:

1. **not finite**: NaN or inf loss (or gradient norm) — diverged.
2. **spike**: the loss exceeds ``spike_factor`` x the mean of the last ``window`` losses — a sudden blow-up.
3. **drift**: the mean of the last ``window`` losses exceeds ``drift_factor`` x the lowest such mean seen
   so far. A slow climb moves the running mean along with it, so rule 2 never fires however far the loss goes;
   comparing the current window with the best window catches it. Whole windows are compared, so step-to-step
   noise and short spikes that recover do not trip it.
"""

from __future__ import annotations

import math
from collections import deque


class DivergenceGuard:
    """Tracks the last ``window`` losses; :meth:`check` returns a reason string when the run diverged.

    Until ``min_history`` losses are seen the spike rule compares with ``reference`` instead of the mean (the
    trainer passes ln(vocab), the loss of a uniform prediction, which an untrained model sits at), so a
    blow-up in the first steps is caught too. ``drift_factor=None`` turns the drift rule off.
    """

    def __init__(self, spike_factor: float, window: int, *, reference: float, min_history: int = 10,
                 drift_factor: float | None = None) -> None:
        self.spike_factor, self.window, self.min_history = spike_factor, window, min_history
        self.reference, self.drift_factor = reference, drift_factor
        self.history: deque[float] = deque(maxlen=window)
        self.best_mean = math.inf  # lowest mean over a full window so far

    def check(self, loss: float, grad_norm: float | None = None) -> str | None:
        if not math.isfinite(loss):
            return f"loss is {loss}"
        if grad_norm is not None and not math.isfinite(grad_norm):
            return f"gradient norm is {grad_norm}"
        enough = len(self.history) >= min(self.min_history, self.window)
        mean = sum(self.history) / len(self.history) if enough else self.reference
        if loss > self.spike_factor * mean:
            return f"loss {loss:.4g} is {loss / mean:.1f}x the running mean {mean:.4g}"
        self.history.append(loss)
        return self._drift()

    def _drift(self) -> str | None:
        if self.drift_factor is None or len(self.history) < self.window:
            return None
        mean = sum(self.history) / len(self.history)
        if mean > self.drift_factor * self.best_mean:
            return (f"mean loss of the last {self.window} steps {mean:.4g} has climbed to "
                    f"{mean / self.best_mean:.2f}x its best {self.best_mean:.4g}")
        self.best_mean = min(self.best_mean, mean)
        return None

    def state_dict(self) -> dict:
        return {"history": list(self.history),
                "best_mean": self.best_mean if math.isfinite(self.best_mean) else None}

    def load_state_dict(self, state: dict) -> None:
        self.history = deque((float(x) for x in state["history"]), maxlen=self.window)
        best = state.get("best_mean")  # absent in checkpoints written before the drift rule
        self.best_mean = float(best) if best is not None else math.inf
