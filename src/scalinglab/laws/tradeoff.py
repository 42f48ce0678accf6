"""The train-vs-sample trade-off: for a target accuracy (coverage with a verifier), the cheapest mix of model
size and samples per query at an expected query volume.

Total compute = training FLOPs + queries * k * tokens_per_sample * 2 * N_active (a forward pass costs about
2 FLOPs per active parameter per token; Kaplan et al. 2020, sec. 2.1). A bigger model costs more to train and
per sample but needs fewer samples to reach the target; the break-even moves with the query volume (Snell et
al. 2024 and Brown et al. 2024 make this comparison at fixed inference budgets). Coverage assumes the right
sample can be recognised (an oracle verifier: tests, a checker); with majority voting, give vote accuracy.

NumPy only (no torch).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scalinglab.errors import PlanError
from scalinglab.validate import positive_finite

__all__ = ["ModelOption", "TradeoffPlan", "plan_tradeoff"]

MAX_SAMPLES = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ModelOption:
    """One candidate model: its size, training cost and coverage as a function of samples k.

    ``coverage(k)`` may be a fitted law's ``predict`` (e.g.
    :class:`~scalinglab.laws.coverage.BetaBinomialFit`), evaluated for k beyond the samples measured.
    """

    name: str
    n_active_params: float
    train_flops: float
    coverage: Callable[[int], float]

    def __post_init__(self) -> None:
        positive_finite("ModelOption.n_active_params", self.n_active_params, error=PlanError)
        positive_finite("ModelOption.train_flops", self.train_flops, error=PlanError)


@dataclass(frozen=True)
class TradeoffPlan:
    """Per candidate: the fewest samples that reach the target and the compute that costs; ``best`` is the
    cheapest feasible one (None when none reaches the target)."""

    target: float
    queries: float
    tokens_per_sample: float
    rows: tuple[dict, ...]
    best: dict | None

    def to_dict(self) -> dict:
        return {"target": self.target, "queries": self.queries, "tokens_per_sample": self.tokens_per_sample,
                "rows": [dict(r) for r in self.rows], "best": None if self.best is None else dict(self.best)}


def _samples_needed(coverage: Callable[[int], float], target: float) -> int | None:
    # Coverage never falls with k: double to bracket the target, then bisect for the smallest k.
    if float(coverage(1)) >= target:
        return 1
    hi = 2
    while float(coverage(hi)) < target:
        hi *= 2
        if hi > MAX_SAMPLES:
            return None
    lo = hi // 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if float(coverage(mid)) >= target else (mid, hi)
    return hi


def plan_tradeoff(options: Sequence[ModelOption], *, target: float, queries: float,
                  tokens_per_sample: float) -> TradeoffPlan:
    """Cheapest (model, samples per query) reaching coverage ``target`` over ``queries`` queries.

    Parameters
    ----------
    options : sequence of ModelOption
    target : float
        Target coverage in (0, 1).
    queries : float
        Expected number of queries over the model's life.
    tokens_per_sample : float
        Tokens generated (plus prompt tokens processed) per sample.
    """
    if not options:
        raise PlanError("plan_tradeoff: give at least one ModelOption")
    if not 0 < target < 1:
        raise PlanError(f"target={target!r} must be a coverage strictly between 0 and 1")
    positive_finite("queries", queries, error=PlanError)
    positive_finite("tokens_per_sample", tokens_per_sample, error=PlanError)
    rows = []
    for opt in options:
        k = _samples_needed(opt.coverage, target)
        per_query = math.nan if k is None else k * tokens_per_sample * 2.0 * opt.n_active_params
        inference = queries * per_query
        rows.append({"model": opt.name, "n_active_params": opt.n_active_params, "samples": k,
                     "train_flops": opt.train_flops, "inference_flops": inference,
                     "total_flops": opt.train_flops + inference, "feasible": k is not None})
    feasible = [r for r in rows if r["feasible"]]
    best = min(feasible, key=lambda r: r["total_flops"]) if feasible else None
    return TradeoffPlan(target=target, queries=queries, tokens_per_sample=tokens_per_sample, rows=tuple(rows),
                        best=best)
