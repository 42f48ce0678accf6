"""One process, no parallelism: every step as :class:`~scalinglab.parallel.strategy.Strategy` defines it.

This is the oracle (llm.c's "slow, obvious reference"): the parallel tests check that DDP and FSDP on two gloo
ranks reproduce its losses and parameters.
"""

from __future__ import annotations

from scalinglab.parallel.strategy import Strategy


class SingleProcess(Strategy):
    """The identity strategy: the model unwrapped, the loss as computed, the state as the model holds it."""
