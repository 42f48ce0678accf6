"""Divergence guard: stop a run whose loss is not finite or spikes far above its running mean.

Loss spikes that grow without recovering are the usual failure of a too-high learning rate (Wortsman et al. 2023,
"Small-scale proxies for large-scale Transformer training instabilities"); catching them early keeps the last good
checkpoint as the run's record instead of burning the rest of the budget.
"""

from __future__ import annotations

import math
from collections import deque


class DivergenceGuard:
    """Tracks the mean of the last ``window`` losses; ``check`` returns a reason string when diverged.

    Until ``min_history`` losses are seen the mean is replaced by ``reference`` (the trainer passes ln(vocab), the
    loss of a uniform prediction, which an untrained model sits at), so a blow-up in the first steps is caught too.
    """

    def __init__(self, spike_factor: float, window: int, *, reference: float, min_history: int = 10) -> None:
        self.spike_factor, self.window, self.min_history = spike_factor, window, min_history
        self.reference = reference
        self.history: deque[float] = deque(maxlen=window)

    def check(self, loss: float, grad_norm: float | None = None) -> str | None:
        if not math.isfinite(loss):
            return f"loss is {loss}"
        if grad_norm is not None and not math.isfinite(grad_norm):
            return f"gradient norm is {grad_norm}"
        enough = len(self.history) >= self.min_history
        mean = sum(self.history) / len(self.history) if enough else self.reference
        if loss > self.spike_factor * mean:
            return f"loss {loss:.4g} is {loss / mean:.1f}x the running mean {mean:.4g}"
        self.history.append(loss)
        return None

    def state_dict(self) -> dict:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict) -> None:
        self.history = deque((float(x) for x in state["history"]), maxlen=self.window)
