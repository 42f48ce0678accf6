"""The one type every scaling law is: :class:`Law`.

A preset (``get_law("epoch2024")``), an Approach 1, 2 or 3 fit, the data-constrained law of Muennighoff et al.
(2023) and a saved fit loaded from JSON all answer the same two questions the same way: *what loss at this N, D
(or C)?* and *how should this budget be split?* Callers (the planner, ``study/``, the CLI) use only this protocol
and never probe a law with ``hasattr``.

The protocol is about loss and allocation only. Laws that predict task accuracy or coverage from samples are
other result types that sit beside it; they are not ``Law``\\s.

An allocation-only law (an Approach 1/2 fit, the ``llama3`` preset) implements ``predict_loss`` by raising
:class:`~scalinglab.errors.PlanError` that names what it lacks.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from scalinglab.laws.allocation import Allocation

__all__ = ["Allocation", "Law"]


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
        compute_flops: Any = None,
        unique_tokens: Any = None,
    ) -> Any:
        """Loss (nats/token) at the given variables; array-like in, NumPy array (or float) out."""
        ...

    def optimal_allocation(self, compute_flops: float, unique_tokens: float | None = None) -> Allocation:
        """The law's best split of ``compute_flops`` into parameters and tokens (with ``unique_tokens``, under a
        finite supply of unique data where the law models repetition)."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description, readable back by ``from_dict`` (and by ``scalinglab.laws.load_law``)."""
        ...
