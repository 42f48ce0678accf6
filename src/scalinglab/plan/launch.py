"""The command that runs a planned layout with ``scalinglab train``, or why it cannot run here.

A plan that says "TP 8 x PP 4 x DP 32" is only useful if the user can launch exactly that. This module maps a
:class:`~scalinglab.plan.layout.Layout` to the trainer's flags (``--tp``, ``--pp``, ``--ep``,
``--parallel``, micro-batches) and to a launcher: ``scalinglab train --nproc N`` inside one node, ``torchrun
--nnodes ... --rdzv-endpoint ... -m scalinglab train`` across nodes. Layouts the trainer does not build are
marked "not runnable here" with the reason instead of a command that would fail or run something else.

ZeRO stages map to FSDP2 (Rajbhandari et al. 2020): ZeRO-3 is ``fully_shard`` (``--parallel fsdp``), ZeRO-2
is ``fully_shard(reshard_after_forward=False)`` (gathered weights kept to the backward), ZeRO-0 is DDP.
ZeRO-1 (optimizer state alone sharded) has no FSDP2 equivalent and is not built.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

RDZV_PORT = 29500
TRAINER_PRECISION = {"mixed": "bf16", "amp": "bf16", "bf16": "bf16", "fp32": "fp32"}


@dataclass(frozen=True)
class LaunchCommand:
    """``command`` (a shell line) when ``scalinglab train`` runs the layout, else ``reason`` it cannot."""

    runnable: bool
    command: str | None
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"runnable": self.runnable, "command": self.command, "reason": self.reason}

    def text(self) -> str:
        return self.command if self.runnable else f"not runnable here: {self.reason}"


def not_runnable_reason(layout: Any) -> str | None:
    """Why ``scalinglab train`` cannot run ``layout`` (a :class:`~scalinglab.plan.layout.Layout`); None if it
    can."""
    dp, tp, pp, ep, zero = layout.dp, layout.tp, layout.pp, layout.ep, layout.zero
    if zero == 1 and dp > 1:
        return ("ZeRO-1 (optimizer state alone sharded) is not built; ZeRO-2 (FSDP2 with "
                "reshard_after_forward=False) and ZeRO-3 (FSDP2) are")
    if tp > 1 and dp > 1 and zero == 0:
        return "tensor parallel with replicated data parallelism (DDP x TP) is not built; FSDP x TP is"
    if tp > 1 and (pp > 1 or ep > 1):
        return "TP composes with FSDP only here (no TP x PP, no TP x EP)"
    if pp > 1 and dp > 1 and zero >= 2:
        return "pipeline stages compose with replicated data parallelism (DP x PP) only, not with FSDP"
    if ep > 1 and pp > 1:
        return "expert parallelism composes with data parallelism/FSDP only, not with pipeline stages"
    return None


def train_flags(layout: Any, shape: Any, *, n_tokens: float, precision: str = "mixed") -> list[str]:
    """``scalinglab train`` flags for ``layout`` training ``shape`` (an ``arch.GPTConfig``) on
    ``n_tokens``."""
    flags = ["--d-model", str(shape.d_model), "--n-layer", str(shape.n_layer), "--n-head", str(shape.n_head)]
    if shape.n_kv_head is not None:
        flags += ["--n-kv-head", str(shape.n_kv_head)]
    flags += ["--mlp", shape.mlp, "--seq-len", str(shape.seq_len)]
    if shape.n_experts is not None:
        flags += ["--experts", str(shape.n_experts), "--top-k", str(shape.top_k)]
    micro = layout.micro_batch * (layout.n_micro if layout.pp > 1 else 1)  # pp cuts it into n_micro pieces
    flags += ["--tokens", str(round(n_tokens)), "--batch-size", str(layout.batch_sequences),
              "--micro-batch-size", str(micro), "--precision", TRAINER_PRECISION.get(precision, "bf16")]
    for name, degree in (("--tp", layout.tp), ("--pp", layout.pp), ("--ep", layout.ep)):
        if degree > 1:
            flags += [name, str(degree)]
    if layout.tp > 1:
        flags += ["--sequence-parallel"]  # the planner prices TP with SP (Korthikanti et al. 2022)
    if layout.pp > 1:
        flags += ["--n-microbatches", str(layout.n_micro)]
    if layout.recompute == "partial":  # selective everywhere, plus block recompute on some layers per stage
        flags += ["--recompute", "selective", "--recompute-layers", str(layout.recompute_layers)]
    elif layout.recompute != "none":
        flags += ["--recompute", layout.recompute]
    if layout.dp > 1:
        flags += ["--parallel", "fsdp" if layout.zero >= 2 or layout.tp > 1 else "ddp"]
        if layout.zero == 2:
            flags += ["--no-reshard-after-forward"]
    return [*flags, "--out", "runs/planned"]


def launch_command(layout: Any, shape: Any, *, n_tokens: float, gpus_per_node: int,
                   precision: str = "mixed") -> LaunchCommand:
    """The launch line of ``layout`` (see the module docstring), or why it is not runnable here."""
    reason = not_runnable_reason(layout)
    if reason is not None:
        return LaunchCommand(False, None, reason)
    world = layout.dp * layout.tp * layout.pp
    flags = train_flags(layout, shape, n_tokens=n_tokens, precision=precision)
    if world <= gpus_per_node:
        head = ["scalinglab", "train", "--nproc", str(world)] if world > 1 else ["scalinglab", "train"]
    else:
        if world % gpus_per_node:
            return LaunchCommand(False, None, f"{world} GPUs do not fill whole nodes of {gpus_per_node}")
        head = ["torchrun", "--nnodes", str(world // gpus_per_node), "--nproc-per-node", str(gpus_per_node),
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"$HEAD_NODE:{RDZV_PORT}", "-m", "scalinglab",
                "train"]
    return LaunchCommand(True, " ".join(shlex.quote(a) if not a.startswith("$") else a
                                        for a in (*head, *flags)), None)
