"""Batch size, learning rate, steps and warmup from compute-based laws.

DeepSeek-AI 2024 (DeepSeek LLM, §3.1, eq. 1): ``B_opt = 0.2920·C^0.3271`` tokens and
``η_opt = 0.3118·C^−0.1250``, fitted on their small-scale grid with C the training compute in FLOPs.
Kaplan et al. 2020 (§5.1, eq. 5.3): critical batch ``B_crit(L) = B*/L^(1/α_B)`` with B* ≈ 2e8 tokens
and α_B ≈ 0.21, L in nats — given for comparison: above B_crit, larger batches stop buying
proportionally fewer steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from scalinglab.errors import PlanError

DEEPSEEK_BATCH = (0.2920, 0.3271)  # DeepSeek LLM 2024, eq. 1: B = 0.2920·C^0.3271 (tokens)
DEEPSEEK_LR = (0.3118, -0.1250)  # DeepSeek LLM 2024, eq. 1: η = 0.3118·C^−0.1250
KAPLAN_B_STAR = 2e8  # Kaplan et al. 2020, eq. 5.3 / Table 6: B* ≈ 2·10^8 tokens
KAPLAN_ALPHA_B = 0.21  # Kaplan et al. 2020, eq. 5.3: α_B ≈ 0.21
WARMUP_STEPS = 2000  # DeepSeek LLM 2024 §2.3: 2,000 warmup steps
WARMUP_MAX_FRACTION = 0.05  # short runs: cap warmup at 5 % of steps (our choice)


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise PlanError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def deepseek_batch_tokens(compute_flops: float) -> float:
    """Optimal batch size in tokens for a compute budget (DeepSeek LLM 2024, eq. 1)."""
    c, e = DEEPSEEK_BATCH
    return c * _positive("compute_flops", compute_flops) ** e


def deepseek_learning_rate(compute_flops: float) -> float:
    """Optimal peak learning rate for a compute budget (DeepSeek LLM 2024, eq. 1)."""
    c, e = DEEPSEEK_LR
    return c * _positive("compute_flops", compute_flops) ** e


def kaplan_critical_batch(loss_nats: float) -> float:
    """Kaplan et al. 2020 critical batch size in tokens at loss ``loss_nats``."""
    return KAPLAN_B_STAR / _positive("loss", loss_nats) ** (1.0 / KAPLAN_ALPHA_B)


@dataclass(frozen=True, kw_only=True)
class HyperParams:
    """Batch, learning rate and schedule length for one run."""

    batch_tokens: float
    batch_sequences: int
    learning_rate: float
    steps: int
    warmup_steps: int
    critical_batch_tokens: float | None
    seq_len: int
    source: str = "DeepSeek LLM 2024 eq. 1 (batch, LR); Kaplan et al. 2020 eq. 5.3 (critical batch)"
    # DeepSeek's batch in sequences when the layout runs another one (None: it runs this one).
    planned_batch_sequences: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _warmup(steps: int) -> int:
    return max(1, min(WARMUP_STEPS, int(WARMUP_MAX_FRACTION * steps)))


def run_hyperparams(hp: HyperParams, batch_sequences: int, n_tokens: float) -> HyperParams:
    """``hp`` for the batch a layout actually runs: steps (and warmup) recomputed so that steps × batch covers
    the planned ``n_tokens`` (overshooting by less than one step); the law's batch is kept as
    ``planned_batch_sequences``. The learning rate stays the law's (DeepSeek eq. 1 ties it to C, not B)."""
    if batch_sequences < 1:
        raise PlanError(f"batch_sequences must be >= 1, got {batch_sequences}")
    if batch_sequences == hp.batch_sequences:
        return hp
    batch_tokens = float(batch_sequences * hp.seq_len)
    steps = max(1, math.ceil(_positive("n_tokens", n_tokens) / batch_tokens))
    return dataclasses.replace(
        hp,
        batch_tokens=batch_tokens,
        batch_sequences=int(batch_sequences),
        steps=steps,
        warmup_steps=_warmup(steps),
        planned_batch_sequences=hp.planned_batch_sequences or hp.batch_sequences,
    )


def plan_hyperparams(
    compute_flops: float, n_tokens: float, *, seq_len: int, loss: float | None = None, batch_multiple: int = 1
) -> HyperParams:
    """Batch (rounded to whole sequences, a multiple of ``batch_multiple``), LR, steps and warmup."""
    _positive("n_tokens", n_tokens)
    if seq_len < 1 or batch_multiple < 1:
        raise PlanError(f"seq_len ({seq_len}) and batch_multiple ({batch_multiple}) must be >= 1")
    raw = deepseek_batch_tokens(compute_flops)
    seqs = max(batch_multiple, round(raw / seq_len / batch_multiple) * batch_multiple)
    batch_tokens = float(seqs * seq_len)
    steps = max(1, math.ceil(n_tokens / batch_tokens))
    warmup = _warmup(steps)
    crit = kaplan_critical_batch(loss) if loss is not None else None
    return HyperParams(
        batch_tokens=batch_tokens,
        batch_sequences=seqs,
        learning_rate=deepseek_learning_rate(compute_flops),
        steps=steps,
        warmup_steps=warmup,
        critical_batch_tokens=crit,
        seq_len=int(seq_len),
    )
