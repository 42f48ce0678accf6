"""Memory per device for training and inference: model states, activations, KV cache, margins.

Model states follow Rajbhandari et al. 2020 (ZeRO, §3): mixed-precision Adam keeps 2 B of bf16/fp16 weights,
2 B of gradients and 12 B of fp32 optimizer state (master weights, momentum, variance) per parameter = 16 B.
ZeRO-1 shards the optimizer state over the data-parallel degree, ZeRO-2 also the gradients, ZeRO-3 (= FSDP's
FULL_SHARD) also the weights. Activations follow Korthikanti et al. 2022 (Reducing Activation Recomputation in
Large Transformer Models, §4, Table 2): ``s·b·h·(34 + 5·a·s/h)`` bytes per layer for 16-bit activations with a
materialised softmax and dropout, built here term by term so that the attention kernel, dropout, recompute and
tensor/sequence parallelism each change the terms they touch. GB in this module's docs = 1e9 bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, NamedTuple

from scalinglab.errors import ConfigError


class PrecisionBytes(NamedTuple):
    """Bytes per parameter of weights, gradients and optimizer state, and bytes per activation element."""

    weights: float
    grads: float
    optimizer: float
    activation: float


# Named apart from train's PRECISIONS (the dtypes a run computes in): these are byte budgets for memory
# planning.
PRECISION_BYTES: dict[str, PrecisionBytes] = {
    # ZeRO paper's mixed-precision Adam: bf16 w+g, fp32 master+m+v
    "mixed": PrecisionBytes(2.0, 2.0, 12.0, 2.0),
    "amp": PrecisionBytes(4.0, 4.0, 8.0, 2.0),  # torch.autocast: fp32 weights/grads/Adam, 16-bit activations
    "fp32": PrecisionBytes(4.0, 4.0, 8.0, 4.0),  # everything fp32 (Adam m and v at 4 B each)
    "bf16": PrecisionBytes(2.0, 2.0, 4.0, 2.0),  # pure bf16 incl. Adam state (no master copy)
}

ATTENTION_KERNELS = ("materialized", "flash")
RECOMPUTE = ("none", "selective", "full")


def _check_choice(field: str, value: str, allowed: tuple[str, ...] | dict) -> None:
    if value not in allowed:
        raise ConfigError(f"{field} = {value!r} is not allowed; use one of {', '.join(allowed)}")


@dataclass(frozen=True, kw_only=True)
class ModelStates:
    """Bytes per device of weights, gradients and optimizer state."""

    weights: float
    grads: float
    optimizer: float

    @property
    def total(self) -> float:
        return self.weights + self.grads + self.optimizer

    def to_dict(self) -> dict[str, float]:
        return {
            "weights": self.weights,
            "grads": self.grads,
            "optimizer": self.optimizer,
            "total": self.total,
        }


def model_state_bytes(
    n_params: float, *, precision: str = "mixed", zero: int = 0, dp: int = 1
) -> ModelStates:
    """Weights + gradients + optimizer state per device for ``n_params`` parameters held by this device.

    Parameters
    ----------
    n_params : float
        Parameters this device holds before ZeRO sharding (already divided by tensor/pipeline degrees).
    precision : {"mixed", "amp", "fp32", "bf16"}
        Bytes per parameter, see ``PRECISION_BYTES``.
    zero : {0, 1, 2, 3}
        ZeRO stage; 3 is FSDP full sharding.
    dp : int
        Data-parallel degree the states are sharded over.

    Examples
    --------
    7B parameters, mixed precision, 8-way ZeRO-1: 7e9·(2 + 2 + 12/8) = 38.5 GB.
    """
    _check_choice("precision", precision, PRECISION_BYTES)
    if zero not in (0, 1, 2, 3):
        raise ConfigError(f"zero = {zero!r} is not allowed; use 0, 1, 2 or 3")
    if dp < 1:
        raise ConfigError(f"dp = {dp!r} must be >= 1")
    w, g, o, _ = PRECISION_BYTES[precision]
    return ModelStates(
        weights=n_params * w / (dp if zero >= 3 else 1),
        grads=n_params * g / (dp if zero >= 2 else 1),
        optimizer=n_params * o / (dp if zero >= 1 else 1),
    )


@dataclass(frozen=True, kw_only=True)
class ActivationSpec:
    """How activations are stored: kernel, dropout, recompute, tensor/sequence parallel, element size."""

    attention: str = "flash"
    dropout: bool = False
    recompute: str = "none"
    tp: int = 1
    sp: bool = False
    act_bytes: float = 2.0
    mlp_ratio: float = 4.0
    gated_mlp: bool = False
    # n_kv_head / n_head: grouped-query attention keeps K and V at the KV heads' width (Ainslie et al. 2023).
    kv_fraction: float = 1.0
    # Implementation details beyond Korthikanti's GPT (all False reproduces the paper). scalinglab's own model
    # (RoPE, torch.nn.RMSNorm, separate q/k/v + SDPA) sets them: see ``for_model``.
    rope: bool = False  # rotated Q and K are new tensors kept beside the QKV output (+2 sbh)
    norm_keeps_normalized: bool = False  # RMSNorm keeps x·rsqrt before the weight multiply (+1 sbh per norm)
    # SDPA returns its output in the query's memory layout: RoPE makes q a fresh (B, H, T, hd) tensor, so the
    # output needs a contiguous (B, T, H·hd) copy for the projection (+1 sbh); without RoPE it is a free view.
    attn_out_copy: bool = False

    @classmethod
    def for_model(cls, cfg: Any, **overrides: Any) -> ActivationSpec:
        """The spec of ``scalinglab.model.GPT(cfg)``: measured with autograd saved-tensor hooks
        (tests/plan)."""
        kw = {
            "attention": "flash",
            "dropout": cfg.dropout > 0,
            "mlp_ratio": cfg.mlp_ratio,
            # With separate q/k/v projections the raw Q and K are freed once rotated (RoPE's multiplies save
            # only cos/sin); a fused QKV output stayed alive as long as V, a view of it, was saved for SDPA.
            "rope": False,
            "norm_keeps_normalized": cfg.norm == "rms",
            "attn_out_copy": cfg.pos == "rope",
            "kv_fraction": cfg.kv_heads / cfg.n_head,
        }
        kw.update(overrides)
        return cls(**kw)

    def __post_init__(self) -> None:
        _check_choice("attention", self.attention, ATTENTION_KERNELS)
        _check_choice("recompute", self.recompute, RECOMPUTE)
        if self.tp < 1:
            raise ConfigError(f"tp = {self.tp!r} must be >= 1")
        if self.act_bytes <= 0 or self.mlp_ratio <= 0:
            raise ConfigError("act_bytes and mlp_ratio must be positive")
        if not 0 < self.kv_fraction <= 1:
            raise ConfigError(f"kv_fraction = {self.kv_fraction!r} must be in (0, 1] (n_kv_head / n_head)")


def activation_bytes_per_layer(
    *, seq_len: int, micro_batch: int, d_model: int, n_head: int, spec: ActivationSpec = ActivationSpec()
) -> float:
    """Bytes of activations one transformer layer keeps for the backward pass, per device.

    Korthikanti et al. 2022 §4.1, with ``e`` = bytes per element (2 in the paper) and 1-byte dropout masks:
    layer norms 2e·sbh; attention input e·sbh, Q and K 2e·sbh, V e·sbh, output-projection input e·sbh,
    softmax output e·as²b, its dropout mask as²b and dropout output e·as²b, attention dropout mask sbh;
    MLP input e·sbh, hidden activations 2·r·e·sbh (GeLU input and output; 3·r·e for a gated MLP),
    dropout mask sbh. With grouped-query attention K and V (and the rotated K) shrink by ``kv_fraction``.
    With e = 2, r = 4 and dropout this is ``sbh·(34 + 5as/h)``. Flash/SDPA kernels keep no s×s matrix, only a
    fp32 log-sum-exp per row (4·a·s·b). Tensor parallel splits the parts inside the TP region by t; sequence
    parallel also splits the rest (Table 2). Selective recompute drops the s² terms; full recompute keeps only
    each layer's input.
    """
    s, b, h, a, t = float(seq_len), float(micro_batch), float(d_model), float(n_head), float(spec.tp)
    e, sbh = spec.act_bytes, s * b * h
    rest_div = t if spec.sp else 1.0  # parts outside the TP region
    if spec.recompute == "full":
        return e * sbh / rest_div
    masks = 2.0 * sbh if spec.dropout else 0.0  # after attention projection and after the MLP
    norms = (2 if spec.norm_keeps_normalized else 1) * 2 * e * sbh
    replicated = norms + (e + e) * sbh + masks  # two norms' inputs, attention input, MLP input
    hidden = (3.0 if spec.gated_mlp else 2.0) * spec.mlp_ratio * e * sbh
    f = spec.kv_fraction
    extra = ((1 + f) * e * sbh if spec.rope else 0.0) + (e * sbh if spec.attn_out_copy else 0.0)
    # Q, K and V (KV width), projection input, MLP hidden
    sharded = (e + 2 * f * e + e) * sbh + hidden + extra
    if spec.attention == "flash":
        core = 4.0 * a * s * b  # fp32 log-sum-exp per head and row
    else:
        core = (e + ((1.0 + e) if spec.dropout else 0.0)) * a * s * s * b
    if spec.recompute == "selective":
        core = 0.0
    return replicated / rest_div + (sharded + core) / t


def head_activation_bytes(
    *, seq_len: int, micro_batch: int, d_model: int, vocab_size: int, spec: ActivationSpec = ActivationSpec()
) -> float:
    """Activations outside the layers that autograd keeps: the final norm's input (and normalised copy), the
    LM head's input, and the fp32 log-softmax that cross-entropy keeps (vocabulary split over TP ranks).
    The first layer's input (the embedding output) is counted with the layers."""
    s, b, t = float(seq_len), float(micro_batch), float(spec.tp)
    rest_div = t if spec.sp else 1.0
    norm = (3 if spec.norm_keeps_normalized else 2) * spec.act_bytes * d_model / rest_div
    return s * b * (norm + 4.0 * vocab_size / t)


def kv_cache_bytes(
    *,
    n_layer: int,
    n_kv_head: int,
    head_dim: int,
    seq_len: int,
    batch: int,
    bytes_per_el: float = 2.0,
    tp: int = 1,
) -> float:
    """Inference KV cache: 2 (K and V) × layers × KV heads × head dim × tokens × batch × bytes.

    With grouped-query attention ``n_kv_head`` < query heads (Ainslie et al. 2023); heads split over TP.
    """
    if min(n_layer, n_kv_head, head_dim, seq_len, batch, tp) < 1:
        raise ConfigError("kv_cache_bytes needs positive n_layer, n_kv_head, head_dim, seq_len, batch, tp")
    return 2.0 * n_layer * (n_kv_head / tp) * head_dim * seq_len * batch * bytes_per_el


@dataclass(frozen=True, kw_only=True)
class MemoryBreakdown:
    """Peak bytes per device for one layout (GB = 1e9 in formatted output)."""

    weights: float
    grads: float
    optimizer: float
    activations: float
    in_flight_micro_batches: int
    workspace: float
    fragmentation: float
    transient: float = 0.0

    @property
    def model_states(self) -> float:
        return self.weights + self.grads + self.optimizer

    @property
    def total(self) -> float:
        return self.model_states + self.activations + self.transient + self.workspace + self.fragmentation

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(model_states=self.model_states, total=self.total)
        return d


def training_memory(
    *,
    n_params_device: float,
    n_layer_device: float,
    seq_len: int,
    micro_batch: int,
    d_model: int,
    n_head: int,
    vocab_size: int,
    spec: ActivationSpec,
    precision: str = "mixed",
    zero: int = 0,
    dp: int = 1,
    pp: int = 1,
    n_micro: int = 1,
    workspace: float = 0.0,
    fragmentation: float = 0.0,
    full_recompute_layers: int = 0,
) -> MemoryBreakdown:
    """Peak training memory of the busiest device (the first pipeline stage under 1F1B).

    ``full_recompute_layers`` of the device's layers keep only their input (Megatron-LM's block recompute,
    ``--recompute-method block``); the others store what ``spec`` says.

    Under 1F1B the first stage holds activations of ``min(pp, n_micro)`` micro-batches (Narayanan et al. 2021,
    §2.2.1; Korthikanti et al. 2022 §4.2.3), so with pipeline parallelism the per-device activation
    memory stays about one full model's worth of layers for one micro-batch. Without a pipeline,
    gradient accumulation frees each micro-batch's activations before the next, so one is in flight.
    """
    states = model_state_bytes(n_params_device, precision=precision, zero=zero, dp=dp)
    in_flight = max(1, min(pp, n_micro))
    per_layer = activation_bytes_per_layer(
        seq_len=seq_len, micro_batch=micro_batch, d_model=d_model, n_head=n_head, spec=spec
    )
    head = head_activation_bytes(
        seq_len=seq_len, micro_batch=micro_batch, d_model=d_model, vocab_size=vocab_size, spec=spec
    )
    full = n_layer_device if spec.recompute == "full" else min(full_recompute_layers, n_layer_device)
    per_full = activation_bytes_per_layer(
        seq_len=seq_len, micro_batch=micro_batch, d_model=d_model, n_head=n_head,
        spec=dataclasses.replace(spec, recompute="full"),
    )
    acts = ((n_layer_device - full) * per_layer + full * per_full) * in_flight + head
    transient = backward_transient_bytes(
        seq_len=seq_len, micro_batch=micro_batch, d_model=d_model, vocab_size=vocab_size, spec=spec
    )
    base = states.total + acts + transient + workspace
    return MemoryBreakdown(
        weights=states.weights,
        grads=states.grads,
        optimizer=states.optimizer,
        activations=acts,
        in_flight_micro_batches=in_flight,
        workspace=workspace,
        fragmentation=fragmentation * base,
        transient=transient,
    )


def backward_transient_bytes(
    *, seq_len: int, micro_batch: int, d_model: int, vocab_size: int, spec: ActivationSpec = ActivationSpec()
) -> float:
    """Gradient buffers alive next to the saved activations at the start of the backward pass.

    The loss's backward holds the fp32 gradient of the log-softmax input beside its saved output and casts
    it to the logits' dtype (``(4 + e)·s·b·V``); inside a layer the largest pair is the MLP's hidden gradients
    (``2·r·e·s·b·h``). The larger of the two is added to the peak.
    """
    s, b, t, e = float(seq_len), float(micro_batch), float(spec.tp), spec.act_bytes
    loss = (4.0 + e) * s * b * vocab_size / t
    mlp = 2.0 * spec.mlp_ratio * e * s * b * d_model / t
    return max(loss, mlp)
