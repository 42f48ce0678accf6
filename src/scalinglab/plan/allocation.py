"""The planner's allocation step on top of the law engine: compute-optimal, data-constrained, inference-aware,
capped at a maximum size, or solved backwards from a target loss; with bootstrap intervals for saved fits."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from scalinglab.errors import ConfigError, PlanError
from scalinglab.laws.law import Law

_CHIN = ("E", "A", "B", "alpha", "beta")


def resolve_law(law: Law | str) -> Law:
    """A :class:`~scalinglab.laws.Law` from a preset name, a saved-fit JSON path, or a ``Law`` itself."""
    if isinstance(law, str):
        from scalinglab.laws.presets import load_law

        try:
            return load_law(law)
        except ConfigError as err:
            raise PlanError(str(err)) from None
    if not isinstance(law, Law):
        raise PlanError(f"law {law!r} is not a scaling law; give a preset name (see list_laws()), a saved "
                        "fit JSON path, or a Law (a preset, a fit result, CombinedLaw, DataConstrainedLaw)")
    return law


def chinchilla_params(law: Law) -> dict[str, float] | None:
    """E, A, B, alpha, beta of a Chinchilla-form law, or None for allocation-only laws."""
    p = law.chinchilla_params()
    return None if p is None else p.as_dict()


def _bootstrap(law: Law) -> dict[str, np.ndarray] | None:
    boot = law.bootstrap_samples()
    if boot is not None and all(k in boot for k in _CHIN):
        return {k: np.asarray(boot[k], dtype=float) for k in _CHIN}
    return None


def _need_params(law: Law, what: str) -> dict[str, float]:
    p = chinchilla_params(law)
    if p is None:
        raise PlanError(
            f"{what} needs a law that predicts loss from N and D (chinchilla, chinchilla-precise, "
            f"epoch2024, muennighoff2023 or a saved chinchilla fit); {law.name!r} "
            f"gives allocations only"
        )
    return p


@dataclass(frozen=True, kw_only=True)
class PlanAllocation:
    """N, D and predicted loss for the plan, with how they were chosen."""

    mode: str
    compute_flops: float
    n_params: float
    n_tokens: float
    loss: float | None
    loss_ci: tuple[float, float] | None = None
    n_params_ci: tuple[float, float] | None = None
    n_tokens_ci: tuple[float, float] | None = None
    epochs: float | None = None
    loss_penalty: float | None = None
    compute_optimal: dict[str, Any] = field(default_factory=dict)
    data_constrained: dict[str, Any] | None = None
    inference: dict[str, Any] | None = None
    law: str = ""
    law_source: str = ""
    notes: tuple[str, ...] = ()

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "compute_flops": self.compute_flops,
            "n_params": self.n_params,
            "n_tokens": self.n_tokens,
            "tokens_per_param": self.tokens_per_param,
            "loss": self.loss,
            "loss_ci": _pair(self.loss_ci),
            "n_params_ci": _pair(self.n_params_ci),
            "n_tokens_ci": _pair(self.n_tokens_ci),
            "epochs": self.epochs,
            "loss_penalty": self.loss_penalty,
            "compute_optimal": dict(self.compute_optimal),
            "data_constrained": self.data_constrained,
            "inference": self.inference,
            "law": self.law,
            "law_source": self.law_source,
            "notes": list(self.notes),
        }


def _pair(x: tuple[float, float] | None) -> list[float] | None:
    return None if x is None else [float(x[0]), float(x[1])]


def compute_for_target(law: Law, target_loss: float, unique_tokens: float | None = None) -> float:
    """Cheapest training compute whose best allocation reaches ``target_loss``."""
    from scalinglab.plan.inference import compute_for_loss

    params = _need_params(law, "a target loss")
    c = compute_for_loss(params, target_loss)
    if unique_tokens is None:
        return c
    dc = _dc_law(law, params)
    lo, hi = math.log(c), math.log(c) + 30 * math.log(10)  # repetition only ever costs more compute
    if dc.optimal_allocation(math.exp(hi), unique_tokens).loss > target_loss:
        raise PlanError(
            f"target loss {target_loss} is out of reach with {unique_tokens:.3g} unique tokens "
            f"(repeated data saturate, Muennighoff et al. 2023); raise unique_tokens= or the target"
        )
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (
            (mid, hi) if dc.optimal_allocation(math.exp(mid), unique_tokens).loss > target_loss else (lo, mid)
        )
    return math.exp(hi)


def _dc_law(law: Law, params: Mapping[str, float]):
    """The data-constrained law on ``params``: a saved data_constrained fit brings its own R_D*, R_N*; any
    other Chinchilla-form law borrows Muennighoff et al.'s published ones."""
    from scalinglab.laws.data_constrained import from_base_law

    own = law.chinchilla_params()
    if own is not None and own.rd_star is not None and own.rn_star is not None:
        r = {"rd_star": own.rd_star, "rn_star": own.rn_star}
        return from_base_law(dict(params), **r, name=f"{law.name} (fitted R*)")
    return from_base_law(dict(params), name=f"{law.name}+muennighoff2023")


def _intervals(
    law: Law, n: float, d: float, unique: float | None, compute: float | None, level: float = 0.95
) -> dict[str, tuple[float, float]]:
    """Percentile intervals from a saved fit's bootstrap samples (loss at N, D; N_opt, D_opt at C)."""
    boot = _bootstrap(law)
    if boot is None:
        return {}
    from scalinglab.laws.data_constrained import DataConstrainedLaw

    q = (50 * (1 - level), 50 * (1 + level))
    samples = [dict(zip(_CHIN, row, strict=True)) for row in zip(*(boot[k] for k in _CHIN), strict=True)]
    laws = []
    for s in samples:  # a resample that wandered to an invalid point (e.g. alpha <= 0) is skipped
        try:
            laws.append(DataConstrainedLaw(**s))
        except ConfigError:
            continue
    if not laws:
        return {}
    losses = [float(x.predict_loss(n, d, unique)) for x in laws]
    out = {"loss": tuple(np.percentile(losses, q))}
    if compute is not None:
        g = np.array([x.G for x in laws])
        a = np.array([x.beta / (x.alpha + x.beta) for x in laws])
        n_opt = g * (compute / 6.0) ** a
        out["n_params"] = tuple(np.percentile(n_opt, q))
        out["n_tokens"] = tuple(np.percentile(compute / (6.0 * n_opt), q))
    return out


def plan_allocation(
    law: Law | str,
    compute_flops: float | None = None,
    *,
    unique_tokens: float | None = None,
    inference_tokens: float | None = None,
    max_params: float | None = None,
    target_loss: float | None = None,
) -> PlanAllocation:
    """Choose N and D for a compute budget (or for ``target_loss`` when no budget is given).

    Order: the law's compute-optimal split; then inference-aware (Sardana & Frankle 2023) when lifetime
    inference tokens are given, at the target loss or at the compute-optimal loss (under the data-constrained
    law when unique tokens are given too); else data-constrained
    (Muennighoff et al. 2023) when the optimal data exceed the unique tokens; finally a ``max_params`` cap
    (train a smaller model for longer on the same compute).
    """
    law = resolve_law(law)
    if (compute_flops is None) == (target_loss is None):
        raise PlanError("give exactly one of a compute budget or a target loss")
    c = compute_flops if compute_flops is not None else compute_for_target(law, target_loss, unique_tokens)
    base = law.optimal_allocation(c)
    name, source = law.name, law.source
    common = {"compute_optimal": base.to_dict(), "law": name, "law_source": source}
    if inference_tokens is not None:
        return _inference(law, base, inference_tokens, target_loss, max_params, common, unique_tokens)
    if unique_tokens is not None and base.n_tokens > unique_tokens:
        return _data_constrained(law, c, unique_tokens, max_params, common)
    n, d, notes, mode = base.n_params, base.n_tokens, [], "compute-optimal"
    if max_params is not None and n > max_params:
        n, d, mode = max_params, c / (6.0 * max_params), "compute-optimal, capped at max params"
        notes.append(
            f"N capped at {max_params:.3g} (the optimum is {base.n_params:.3g}): train longer instead"
        )
    params = chinchilla_params(law)
    loss = float(law.predict_loss(n, d)) if params is not None else base.loss
    epochs = None if unique_tokens is None else d / unique_tokens
    if epochs is not None:
        notes.append(f"unique data suffice: {epochs:.2f} epochs")
    ci = _intervals(law, n, d, None, c if mode == "compute-optimal" else None)
    return PlanAllocation(
        mode=mode,
        compute_flops=c,
        n_params=n,
        n_tokens=d,
        loss=loss,
        loss_ci=ci.get("loss"),
        n_params_ci=ci.get("n_params"),
        n_tokens_ci=ci.get("n_tokens"),
        epochs=epochs,
        notes=tuple(notes),
        **common,
    )


def _inference(law, base, inference_tokens, target_loss, max_params, common, unique=None) -> PlanAllocation:
    """Inference-aware N, D (Sardana & Frankle 2023); with ``unique`` tokens, under the data-constrained law
    (Muennighoff et al. 2023), at the loss the budget would reach with that data."""
    from scalinglab.plan import inference as infer

    params = _need_params(law, "inference-aware planning")
    dc = None if unique is None else _dc_law(law, params)
    if target_loss is not None:
        target = target_loss
    elif dc is None:
        target = float(law.predict_loss(base.n_params, base.n_tokens))
    else:  # the loss this budget reaches with the data there is
        target = float(dc.optimal_allocation(base.compute_flops, unique).loss)
    if dc is None:
        inf = infer.inference_aware_allocation(params, target, inference_tokens)
        def tokens_for(n):
            return infer.tokens_for_loss(params, n, target)
    else:
        inf = infer.inference_aware_data_constrained(dc, target, inference_tokens, unique)
        def tokens_for(n):
            return float(infer.dc_tokens_for_loss(dc, n, target, unique))
    notes = [
        (
            f"{inf.params_ratio:.2f}x the compute-optimal size, trained on {inf.tokens_ratio:.2f}x the "
            f"tokens; lifetime FLOPs {inf.total_saving:.1%} saved at the same loss {target:.4g}"
        )
    ]
    n, d, mode = inf.n_params, inf.n_tokens, "inference-aware"
    if max_params is not None and n > max_params:
        # Below the inference-aware size the total only grows, so the cap itself is the best size left;
        # train it until it reaches the same loss.
        n, d, mode = max_params, tokens_for(max_params), mode + ", capped"
        if not math.isfinite(d):
            raise PlanError(
                f"a model of at most {max_params:.3g} parameters never reaches loss {target:.4g} "
                f"under {law.name}; raise max_params="
            )
        notes.append(f"N capped at {max_params:.3g} (inference-aware optimum {inf.n_params:.3g})")
    # on the final D: a cap trains longer, possibly past the unique data
    if unique is not None and d > unique:
        mode = mode.replace("inference-aware", "inference-aware, data-constrained")
    if 6 * n * d > base.compute_flops * (1 + 1e-9) and target_loss is None:
        notes.append(
            f"training compute rises to {6 * n * d:.3g} FLOPs "
            f"({6 * n * d / base.compute_flops - 1:+.0%} over the budget) to save inference FLOPs"
        )
    if unique is not None:
        notes.append(f"{d / unique:.2f} epochs over the {unique:.3g} unique tokens (Muennighoff et al. 2023)")
    ci = _intervals(law, n, d, unique, None)
    return PlanAllocation(
        mode=mode,
        compute_flops=6 * n * d,
        n_params=n,
        n_tokens=d,
        loss=target,
        loss_ci=ci.get("loss"),
        epochs=None if unique is None else d / unique,
        inference=inf.to_dict(),
        notes=tuple(notes),
        **common,
    )


def _data_constrained(law, c, unique_tokens, max_params, common) -> PlanAllocation:
    params = _need_params(law, "data-constrained planning (unique_tokens=)")
    dc = _dc_law(law, params)
    alloc = dc.optimal_allocation(c, unique_tokens)
    n, d, mode = alloc.n_params, alloc.n_tokens, "data-constrained"
    notes = [
        (
            f"optimal data {common['compute_optimal']['n_tokens']:.3g} exceed the {unique_tokens:.3g} unique "
            f"tokens: repeat {d / unique_tokens:.2f} epochs (Muennighoff et al. 2023)"
        )
    ]
    if max_params is not None and n > max_params:
        n, d, mode = max_params, c / (6.0 * max_params), "data-constrained, capped at max params"
        notes.append(f"N capped at {max_params:.3g}")
    loss = float(dc.predict_loss(n, d, unique_tokens))
    ci = _intervals(law, n, d, unique_tokens, None)
    return PlanAllocation(
        mode=mode,
        compute_flops=c,
        n_params=n,
        n_tokens=d,
        loss=loss,
        loss_ci=ci.get("loss"),
        epochs=d / unique_tokens,
        loss_penalty=loss - alloc.unconstrained_loss,
        data_constrained=alloc.to_dict(),
        notes=tuple(notes),
        **common,
    )
