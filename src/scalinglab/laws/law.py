"""The one type every scaling law is: :class:`Law`; and :class:`CombinedLaw`, one law's allocation with
another's loss.

A preset (``get_law("epoch2024")``), an Approach 1, 2 or 3 fit, the data-constrained law of Muennighoff et al.
(2023) and a saved fit loaded from JSON all answer the same two questions the same way: *what loss at this N,
D (or C)?* and *how should this budget be split?* Callers (the planner, ``study/``, the CLI) use only this
protocol and never probe a law with ``hasattr``.

The protocol is about loss and allocation only. Laws that predict task accuracy or coverage from samples are
other result types that sit beside it; they are not ``Law``\\s.

An allocation-only law (an Approach 1/2 fit, the ``llama3`` preset) implements ``predict_loss`` by raising
:class:`~scalinglab.errors.PlanError` that names what it lacks, and has empty ``variables``.

This module imports only :mod:`scalinglab.laws.allocation`: every law type satisfies the protocol
structurally, so none of them imports it, and the loaders (``presets.law_from_dict``) sit above all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np

from scalinglab.errors import FitError, PlanError
from scalinglab.laws.allocation import Allocation, ChinchillaParams

__all__ = ["Allocation", "ChinchillaParams", "CombinedLaw", "Law"]


@runtime_checkable
class Law(Protocol):
    """A scaling law: a loss prediction and/or a compute-optimal allocation rule.

    Attributes
    ----------
    name : str
        Short name (a preset name, or the stem of a saved fit).
    source : str
        A citation (paper, equation, table) or the provenance of a fit (data file, approach, points used).
    variables : tuple of str
        The variables ``predict_loss`` reads, among ``n_params``, ``n_tokens``, ``compute_flops`` and
        ``unique_tokens``; empty for an allocation-only law.
    """

    name: str
    source: str
    variables: tuple[str, ...]

    def predict_loss(
        self,
        n_params: Any = None,
        n_tokens: Any = None,
        *,
        compute_flops: Any = None,
        unique_tokens: Any = None,
    ) -> Any:
        """Loss (nats/token) at the given variables; array-like in, NumPy array (or float) out.

        ``n_params`` and ``n_tokens`` may be positional; the others are keywords."""
        ...

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """The law's best split of ``compute_flops`` into parameters and tokens (with ``unique_tokens``, under
        a finite supply of unique data where the law models repetition; other laws refuse it)."""
        ...

    def chinchilla_params(self) -> ChinchillaParams | None:
        """E, A, B, alpha, beta when the loss is Chinchilla-form (what inference-aware and data-constrained
        planning need), else None."""
        ...

    def bootstrap_samples(self) -> Mapping[str, np.ndarray] | None:
        """Bootstrap samples of the law's parameters by name (for intervals), or None."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, readable back by ``from_dict`` (and by
        ``scalinglab.laws.law_from_dict``)."""
        ...


@dataclass(frozen=True, eq=False)
class CombinedLaw:
    """A law whose allocation comes from one :class:`Law` and whose loss comes from another.

    The case it was made for: a sweep's Approach 2 power laws give N_opt(C), D_opt(C) as measured at the
    IsoFLOP minima (Hoffmann et al. 2022 §3.2), while its Approach 3 fit gives the loss there (§3.3).
    ``optimal_allocation`` returns the allocation law's split with the loss law's loss at that N, D;
    ``chinchilla_params`` is the loss law's (the planner's inference-aware and data-constrained modes need the
    loss surface). ``bootstrap_samples`` is None: the two parts were resampled separately, so their samples do
    not pair up into one interval.
    """

    allocation_law: Law
    loss_law: Law
    name: str = "combined"
    source: str = ""

    def __post_init__(self) -> None:
        for role, law in (("allocation_law", self.allocation_law), ("loss_law", self.loss_law)):
            if not isinstance(law, Law):
                raise PlanError(f"CombinedLaw {role} must be a Law (a preset, a fit or a saved fit); "
                                f"got {type(law).__name__}")
        if not self.loss_law.variables:
            raise PlanError(f"CombinedLaw loss_law {self.loss_law.name!r} is allocation-only and predicts no "
                            "loss")
        if not self.source:
            object.__setattr__(self, "source", f"allocation from {self.allocation_law.name} "
                                               f"({self.allocation_law.source}); loss from "
                                               f"{self.loss_law.name} ({self.loss_law.source})")

    @property
    def variables(self) -> tuple[str, ...]:
        return self.loss_law.variables

    def predict_loss(self, n_params: Any = None, n_tokens: Any = None, *, compute_flops: Any = None,
                     unique_tokens: Any = None) -> Any:
        """The loss law's prediction."""
        return self.loss_law.predict_loss(n_params, n_tokens, compute_flops=compute_flops,
                                          unique_tokens=unique_tokens)

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """The allocation law's N, D at ``compute_flops`` and the loss law's loss there."""
        alloc = self.allocation_law.optimal_allocation(compute_flops, unique_tokens)
        extra = {} if unique_tokens is None else {"unique_tokens": unique_tokens}
        loss = float(self.loss_law.predict_loss(alloc.n_params, alloc.n_tokens, **extra))
        return replace(alloc, loss=loss, loss_ci=None)

    def chinchilla_params(self) -> ChinchillaParams | None:
        return self.loss_law.chinchilla_params()

    def bootstrap_samples(self) -> None:
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"law": "combined", "name": self.name, "source": self.source,
                "allocation_law": self.allocation_law.to_dict(), "loss_law": self.loss_law.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], decode: Callable[[Mapping[str, Any]], Law]) -> CombinedLaw:
        """Rebuild from :meth:`to_dict` output; ``decode`` rebuilds each part (normally
        :func:`scalinglab.laws.law_from_dict`, which calls this)."""
        try:
            parts = d["allocation_law"], d["loss_law"]
        except (KeyError, TypeError):
            raise FitError("not a combined law (expected allocation_law and loss_law)") from None
        return cls(allocation_law=decode(parts[0]), loss_law=decode(parts[1]),
                   name=str(d.get("name", "combined")),
                   source=str(d.get("source", "")))
