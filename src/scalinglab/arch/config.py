"""The GPT shape config (:class:`GPTConfig`, :class:`AttentionSpec`): validated at construction,
torch-free."""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scalinglab.errors import ConfigError
from scalinglab.validate import integer, is_real, positive_int, require_bool

MAX_MLP_RATIO = 64.0
ATTENTION_KINDS = ("dense", "local", "global", "random", "bigbird")
NORMS = ("rms", "layer")
POSITIONS = ("rope", "learned")
MLPS = ("gelu", "swiglu")
DEFAULT_ROPE_THETA = 10_000.0  # Su et al. 2021; Llama 3 uses 500,000 (Dubey et al. 2024, Table 3)
DEFAULT_MULTIPLE_OF = 256  # Llama's ModelArgs default (meta-llama/llama, model.py)
# Fields added after configs were first saved: to_dict() leaves them out at their defaults, so an old config's
# dict, its TrainConfig fingerprint and its sweep run id are unchanged (from_dict fills the defaults back in).
_OMIT_AT_DEFAULT = ("mlp", "mlp_hidden", "ffn_dim_multiplier", "multiple_of", "rope_theta")

# Which components each sparse kind uses. Every sparse kind keeps the sliding window (so each query sees
# itself and its neighbours, as in Longformer / BigBird); "global" adds global tokens, "random" adds random
# key blocks, "bigbird" is all three (Zaheer et al. 2020, Fig. 1).
_USES_GLOBAL = ("global", "bigbird")
_USES_RANDOM = ("random", "bigbird")


def _choice(owner: str, name: str, value: Any, allowed: Iterable[str]) -> None:
    if value not in tuple(allowed):
        raise ConfigError(f"{owner}.{name}={value!r} is not allowed; use one of {', '.join(allowed)}")


def swiglu_hidden(d_model: int, *, mlp_ratio: float = 4.0, ffn_dim_multiplier: float | None = None,
                  multiple_of: int = DEFAULT_MULTIPLE_OF) -> int:
    """Hidden width of a SwiGLU MLP as Llama computes it (meta-llama/llama ``FeedForward``).

    ``h = int(2/3 * mlp_ratio * d)`` keeps the gated MLP's three matrices at the parameters of an ungated one
    of ratio ``mlp_ratio`` (Shazeer 2020, Sec. 2); then ``h = int(ffn_dim_multiplier * h)`` if given, rounded
    up to a multiple of ``multiple_of``. Llama 2 7B: d=4096 -> 11008; Llama 3 8B: d=4096, 1.3, 1024 -> 14336.
    """
    hidden = int(2 * mlp_ratio * d_model / 3)
    if ffn_dim_multiplier is not None:
        hidden = int(ffn_dim_multiplier * hidden)
    return multiple_of * -(-hidden // multiple_of)


def _check_keys(cls: type, d: Mapping[str, Any]) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    for key in d:
        if key not in names:
            hint = difflib.get_close_matches(key, sorted(names), n=1)
            tip = f"; did you mean {hint[0]!r}?" if hint else f"; known keys: {', '.join(sorted(names))}"
            raise ConfigError(f"unknown {cls.__name__} key {key!r}{tip}")


@dataclass(frozen=True, kw_only=True)
class AttentionSpec:
    """One layer's attention pattern (always causal).

    Parameters
    ----------
    kind : {"dense", "local", "global", "random", "bigbird"}
        ``local``: sliding window of ``window`` keys (self included). ``global``: window + the first
        ``n_global`` tokens visible to every later query. ``random``: window + ``n_random_blocks`` random past
        key blocks of ``block_size`` per query block. ``bigbird``: all three.
    window : int or None
        Keys per query in the sliding window (required for sparse kinds; ``window >= seq_len`` equals dense).
    n_global : int or None
        Global tokens (default 1 for global/bigbird, 0 otherwise).
    n_random_blocks : int or None
        Random key blocks per query block (default 1 for random/bigbird, 0 otherwise).
    block_size : int
        Block size of the random pattern.
    seed : int
        Seed of the random blocks (mixed with the layer index, so layers differ).
    """

    kind: str = "dense"
    window: int | None = None
    n_global: int | None = None
    n_random_blocks: int | None = None
    block_size: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        _choice("attention", "kind", self.kind, ATTENTION_KINDS)
        positive_int("attention.block_size", self.block_size)
        integer("attention.seed", self.seed)
        if self.kind == "dense":
            if self.window is not None:
                raise ConfigError(f"attention.window={self.window} needs a sparse kind (e.g. kind='local')")
        elif self.window is None:
            raise ConfigError(f"attention.window is required for kind={self.kind!r}; give e.g. window=64")
        else:
            positive_int("attention.window", self.window)
        self._resolve("n_global", _USES_GLOBAL)
        self._resolve("n_random_blocks", _USES_RANDOM)

    def _resolve(self, name: str, kinds: tuple[str, ...]) -> None:
        value = getattr(self, name)
        if value is None:
            object.__setattr__(self, name, 1 if self.kind in kinds else 0)
        elif self.kind in kinds:
            positive_int(f"attention.{name}", value)
        elif value != 0:
            raise ConfigError(f"attention.{name}={value} only applies to kind in {kinds}, not {self.kind!r}")

    @property
    def is_dense(self) -> bool:
        return self.kind == "dense"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AttentionSpec:
        _check_keys(cls, d)
        return cls(**dict(d))


@dataclass(frozen=True, kw_only=True)
class GPTConfig:
    """Shape of one GPT (decoder-only transformer, pre-norm).

    ``mlp="gelu"`` is GPT-2's MLP (two matrices, hidden ``round(mlp_ratio * d_model)``); ``mlp="swiglu"`` is
    the gated MLP of PaLM and Llama, ``w2(silu(w1 x) * w3 x)`` (Shazeer 2020), three matrices of hidden
    :func:`swiglu_hidden` (Llama's rule, from ``mlp_ratio``, ``ffn_dim_multiplier`` and ``multiple_of``).
    ``mlp_hidden`` fixes the hidden width of either kind instead (Mixtral: 14336). ``rope_theta`` is the base
    of the rotary frequencies.

    ``n_experts=None`` is a dense MLP; with ``n_experts`` every layer's MLP is a mixture of experts routing
    each token to ``top_k`` of them (Shazeer et al. 2017; Fedus et al. 2021). ``aux_loss_coef`` weighs the
    Switch load-balancing loss. ``layer_attention`` overrides ``attention`` per layer (length ``n_layer``).
    """

    vocab_size: int
    seq_len: int
    d_model: int
    n_layer: int
    n_head: int
    n_kv_head: int | None = None
    mlp_ratio: float = 4.0
    mlp: str = "gelu"
    mlp_hidden: int | None = None
    ffn_dim_multiplier: float | None = None
    multiple_of: int | None = None
    norm: str = "rms"
    pos: str = "rope"
    tied_embeddings: bool = False
    bias: bool = False
    dropout: float = 0.0
    rope_theta: float = DEFAULT_ROPE_THETA
    n_experts: int | None = None
    top_k: int = 1
    capacity_factor: float = 1.25
    aux_loss_coef: float = 0.01
    attention: AttentionSpec = field(default_factory=AttentionSpec)
    layer_attention: tuple[AttentionSpec, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "seq_len", "d_model", "n_layer", "n_head", "top_k"):
            positive_int(f"GPTConfig.{name}", getattr(self, name))
        for name in ("tied_embeddings", "bias"):
            require_bool(f"GPTConfig.{name}", getattr(self, name))
        _choice("GPTConfig", "norm", self.norm, NORMS)
        _choice("GPTConfig", "pos", self.pos, POSITIONS)
        self._check_heads()
        self._check_mlp()
        self._check_floats()
        self._check_experts()
        self._check_attention()

    def _check_heads(self) -> None:
        if self.d_model % self.n_head:
            raise ConfigError(f"GPTConfig.n_head={self.n_head} does not divide d_model={self.d_model}; "
                              "pick n_head so that d_model/n_head is an integer")
        if self.n_kv_head is not None:
            positive_int("GPTConfig.n_kv_head", self.n_kv_head)
            if self.n_head % self.n_kv_head:
                raise ConfigError(f"GPTConfig.n_kv_head={self.n_kv_head} does not divide "
                                  f"n_head={self.n_head}")
        if self.pos == "rope" and self.head_dim % 2:
            raise ConfigError(f"rotary positions need an even head_dim, got {self.head_dim}; change "
                              "d_model/n_head")

    def _check_mlp(self) -> None:
        _choice("GPTConfig", "mlp", self.mlp, MLPS)
        if self.mlp_hidden is not None:
            positive_int("GPTConfig.mlp_hidden", self.mlp_hidden)
        for name in ("ffn_dim_multiplier", "multiple_of"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.mlp != "swiglu" or self.mlp_hidden is not None:
                raise ConfigError(f"GPTConfig.{name}={value!r} only applies to mlp='swiglu' without "
                                  f"mlp_hidden; leave {name} unset")
            if name == "multiple_of":
                positive_int(f"GPTConfig.{name}", value)
            elif not is_real(value) or not 0 < value <= MAX_MLP_RATIO:
                raise ConfigError(f"GPTConfig.{name}={value!r} is not allowed; give a positive number "
                                  f"<= {MAX_MLP_RATIO}")
        theta = self.rope_theta
        if not is_real(theta) or not 1.0 < theta < math.inf:
            raise ConfigError(f"GPTConfig.rope_theta={theta!r} is not allowed; give a finite number > 1")
        if self.pos != "rope" and theta != DEFAULT_ROPE_THETA:
            raise ConfigError(f"GPTConfig.rope_theta={theta!r} only applies to pos='rope', not {self.pos!r}")

    def _check_floats(self) -> None:
        # mlp_ratio is capped: no real GPT uses more than a few dozen, and absurd ratios overflow the counts.
        for name, lo, hi in (("mlp_ratio", 0.0, MAX_MLP_RATIO), ("capacity_factor", 0.0, math.inf)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not lo < value <= hi:
                raise ConfigError(f"GPTConfig.{name}={value!r} is not allowed; give a positive number <= "
                                  f"{hi}")
        if not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GPTConfig.dropout={self.dropout!r} is not allowed; give a number in [0, 1)")
        if not isinstance(self.aux_loss_coef, (int, float)) or not 0 <= self.aux_loss_coef < math.inf:
            raise ConfigError(f"GPTConfig.aux_loss_coef={self.aux_loss_coef!r} must be a finite number >= 0")
        if self.d_mlp < 1:
            raise ConfigError(f"GPTConfig.mlp_ratio={self.mlp_ratio} gives an empty MLP at "
                              f"d_model={self.d_model}")
        if self.d_mlp > MAX_MLP_RATIO * self.d_model:
            raise ConfigError(f"GPTConfig gives an MLP hidden width of {self.d_mlp}, more than "
                              f"{MAX_MLP_RATIO:g} x d_model={self.d_model}; lower mlp_hidden, mlp_ratio, "
                              "ffn_dim_multiplier or multiple_of")

    def _check_experts(self) -> None:
        if self.n_experts is None:
            return
        positive_int("GPTConfig.n_experts", self.n_experts)
        if self.top_k > self.n_experts:
            raise ConfigError(f"GPTConfig.top_k={self.top_k} exceeds n_experts={self.n_experts}; "
                              "use top_k <= n_experts")

    def _check_attention(self) -> None:
        if not isinstance(self.attention, AttentionSpec):
            raise ConfigError("GPTConfig.attention must be an AttentionSpec, got "
                              f"{type(self.attention).__name__}")
        if self.layer_attention is not None:
            object.__setattr__(self, "layer_attention", tuple(self.layer_attention))
            if len(self.layer_attention) != self.n_layer:
                raise ConfigError(f"GPTConfig.layer_attention has {len(self.layer_attention)} entries; "
                                  f"give one per layer (n_layer={self.n_layer})")
        # one check per distinct pattern, not per layer: n_layer may be absurd (a garbage --depth), and a
        # per-layer tuple of 4e9 entries is a MemoryError, not our one-line error
        for spec in dict.fromkeys(self.layer_attention or (self.attention,)):
            if spec.window is not None and spec.window > self.seq_len:
                raise ConfigError(f"attention window={spec.window} is larger than seq_len={self.seq_len}; "
                                  "use window <= seq_len")
            if spec.n_global > self.seq_len:
                raise ConfigError(f"attention n_global={spec.n_global} exceeds seq_len={self.seq_len}; "
                                  "use n_global <= seq_len")

    # Derived shapes -----------------------------------------------------------------------------------------
    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def d_mlp(self) -> int:
        """Hidden width of the MLP (and of each expert): ``mlp_hidden`` if given, else ``round(mlp_ratio *
        d_model)`` for GELU and :func:`swiglu_hidden` for SwiGLU."""
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.mlp == "swiglu":
            return swiglu_hidden(self.d_model, mlp_ratio=self.mlp_ratio,
                                 ffn_dim_multiplier=self.ffn_dim_multiplier,
                                 multiple_of=self.multiple_of or DEFAULT_MULTIPLE_OF)
        return int(round(self.mlp_ratio * self.d_model))

    @property
    def mlp_matrices(self) -> int:
        """Weight matrices per MLP (per expert): 2 for GELU (up, down), 3 for SwiGLU (w1, w3 up; w2 down)."""
        return 3 if self.mlp == "swiglu" else 2

    @property
    def is_moe(self) -> bool:
        return self.n_experts is not None

    @property
    def layer_specs(self) -> tuple[AttentionSpec, ...]:
        """The attention pattern of each layer."""
        return self.layer_attention if self.layer_attention is not None else (self.attention,) * self.n_layer

    # Construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_depth(cls, depth: int, *, aspect_ratio: int = 64, head_dim: int = 64, vocab_size: int = 50304,
                   seq_len: int = 1024, **overrides: Any) -> GPTConfig:
        """nanochat-style family: ``n_layer = depth``, ``d_model = depth * aspect_ratio`` rounded to a
        multiple of ``head_dim`` (at least one head), ``n_head = d_model / head_dim``. Depth 12 is GPT-2
        small's shape."""
        positive_int("GPTConfig.depth", depth)
        positive_int("GPTConfig.aspect_ratio", aspect_ratio)
        positive_int("GPTConfig.head_dim", head_dim)
        d_model = max(1, round(depth * aspect_ratio / head_dim)) * head_dim
        shape = dict(vocab_size=vocab_size, seq_len=seq_len, d_model=d_model, n_layer=depth,
                     n_head=d_model // head_dim)
        shape.update(overrides)
        return cls(**shape)

    def replace(self, **changes: Any) -> GPTConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if not (f.name in _OMIT_AT_DEFAULT and getattr(self, f.name) == f.default)}
        d["attention"] = self.attention.to_dict()
        if self.layer_attention is not None:
            d["layer_attention"] = [s.to_dict() for s in self.layer_attention]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GPTConfig:
        """Inverse of :meth:`to_dict` (missing keys take their defaults, so configs saved before a field
        existed load unchanged); unknown keys are a :class:`ConfigError` with a "did you mean"."""
        _check_keys(cls, d)
        d = dict(d)
        if isinstance(d.get("attention"), Mapping):
            d["attention"] = AttentionSpec.from_dict(d["attention"])
        if d.get("layer_attention") is not None:
            d["layer_attention"] = tuple(s if isinstance(s, AttentionSpec) else AttentionSpec.from_dict(s)
                                         for s in d["layer_attention"])
        return cls(**d)
