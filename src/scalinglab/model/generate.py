"""Batched sampling from a :class:`~scalinglab.model.GPT` with a KV cache.

The prompt is run once (prefill), then one token per step attends over the cached keys and values of every
earlier position, so a step costs O(T) instead of the O(T^2) of recomputing the full forward. The cached path
computes the same function as :meth:`GPT.forward` (a test checks the logits agree to fp32 rounding and that
greedy decoding gives the same tokens as recomputing the full forward each step):

* positions: rotary tables (or learned position embeddings) are sliced at the cache's absolute position;
* attention: the query rows at absolute positions ``p..p+T-1`` see the cached keys through the layer's own
  mask function (:func:`scalinglab.model.masks.mask_fn`), so dense, local, global, random and BigBird layers
  are all exact; a purely local layer keeps only its last ``window - 1`` keys (the window bounds the cache).

Sampling (per row): temperature (0 = greedy), top-k, top-p (nucleus, Holtzman et al. 2020), stop strings and
the end-of-text token; a seeded ``torch.Generator`` makes a call reproducible. Mixture-of-experts layers route
with a capacity computed from the tokens of one call, so they equal the full forward only when no token is
dropped (raise ``capacity_factor`` for evaluation; see :mod:`scalinglab.model.moe`).

Example::

    from scalinglab.model.generate import SamplingConfig, generate
    done = generate(model, [tok.encode("12+34=")] * 8, SamplingConfig(temperature=0.8, stop=("\\n",)),
                    tokenizer=tok)
    [c.text for c in done]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scalinglab.arch import GPTConfig
from scalinglab.errors import ConfigError
from scalinglab.model import masks

MAX_BATCH_ROWS = 1024  # rows per forward; bigger requests are split (memory of the cache grows with rows)
FINISH_REASONS = ("stop", "eot", "length")


@dataclass(frozen=True, kw_only=True)
class SamplingConfig:
    """How to sample.

    Parameters
    ----------
    max_new_tokens : int
        Upper bound on generated tokens per row (also bounded by the model's ``seq_len``).
    temperature : float
        Softmax temperature; 0 is greedy (argmax).
    top_k : int, optional
        Sample only among the ``top_k`` most likely tokens.
    top_p : float, optional
        Sample from the smallest set of tokens whose probability reaches ``top_p`` (nucleus sampling).
    stop : tuple of str
        A row stops when its generated text contains one of these; the text is cut before it.
    seed : int
        Seed of the sampling generator (same seed, same model, same prompts: same samples).
    stop_at_eot : bool
        Stop a row at the end-of-text token (not part of the text).
    """

    max_new_tokens: int = 32
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int = 0
    stop_at_eot: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int) \
                or self.max_new_tokens < 1:
            raise ConfigError(f"SamplingConfig.max_new_tokens={self.max_new_tokens!r} must be a positive "
                              "integer")
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t < math.inf:
            raise ConfigError(f"SamplingConfig.temperature={t!r} must be a finite number >= 0 (0 = greedy)")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise ConfigError(f"SamplingConfig.top_k={self.top_k!r} must be a positive integer or unset")
        p = self.top_p
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1):
            raise ConfigError(f"SamplingConfig.top_p={p!r} must be in (0, 1] or unset")
        if isinstance(self.stop, str) or any(not isinstance(s, str) or not s for s in self.stop):
            raise ConfigError(f"SamplingConfig.stop={self.stop!r} must be a list of non-empty strings")
        object.__setattr__(self, "stop", tuple(self.stop))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"SamplingConfig.seed={self.seed!r} must be a non-negative integer")


@dataclass(frozen=True)
class Completion:
    """One sampled continuation: its token ids, its text (cut before a stop string) and why it ended."""

    token_ids: tuple[int, ...]
    text: str
    finish: str  # one of FINISH_REASONS

    def to_dict(self) -> dict:
        return {"token_ids": list(self.token_ids), "text": self.text, "finish": self.finish}


class KVCache:
    """Keys and values of every layer for the positions run so far (one cache per batch of rows).

    ``pos`` is the absolute position of the next token. A layer whose pattern is a pure sliding window keeps
    only its last ``window - 1`` keys: the next query sees ``window`` keys, itself included.
    """

    def __init__(self, cfg: GPTConfig, device: torch.device | str = "cpu") -> None:
        self.cfg, self.pos = cfg, 0
        n = cfg.n_layer
        self._k: list[torch.Tensor | None] = [None] * n
        self._v: list[torch.Tensor | None] = [None] * n
        self._start = [0] * n  # absolute position of each layer's first cached key
        self._fns = [masks.mask_fn(s, cfg.seq_len, i, device) for i, s in enumerate(cfg.layer_specs)]
        self._keep = [s.window - 1 if s.kind == "local" else None for s in cfg.layer_specs]

    def cached_len(self, layer_idx: int) -> int:
        k = self._k[layer_idx]
        return 0 if k is None else k.size(-2)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, spec,
               layer_idx: int) -> torch.Tensor:
        """Attention of the new queries q (B, H, T, hd) over the cache plus the new k, v (B, H_kv, T, hd)."""
        i = layer_idx
        if self._k[i] is not None:
            k, v = torch.cat((self._k[i], k), dim=-2), torch.cat((self._v[i], v), dim=-2)  # (B, H_kv, S, hd)
        q_pos = self.pos + torch.arange(q.size(-2), device=q.device)
        kv_pos = self._start[i] + torch.arange(k.size(-2), device=q.device)
        mask = self._fns[i](q_pos[:, None], kv_pos[None, :])  # (T, S), True = attend
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.size(1) != k.size(1))
        keep = self._keep[i]
        if keep is not None and k.size(-2) > keep:
            drop = k.size(-2) - keep
            k, v = k[..., drop:, :], v[..., drop:, :]
            self._start[i] += drop
        self._k[i], self._v[i] = k, v
        return y


@torch.no_grad()
def forward_cached(model, idx: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Logits (B, T, V) of tokens ``idx`` (B, T) at positions ``cache.pos ..``, appending them to ``cache``.

    The same blocks as :meth:`GPT.forward`, in the same order; only attention reads the cache.
    """
    cfg, T, p = model.cfg, idx.size(1), cache.pos
    if p + T > cfg.seq_len:
        raise ConfigError(f"{p + T} positions exceed the model's seq_len={cfg.seq_len}; shorten the prompt "
                          "or max_new_tokens")
    x = model.wte(idx)  # (B, T, C)
    if model.wpe is not None:
        x = x + model.wpe(torch.arange(p, p + T, device=idx.device))
    x = model.drop(x)
    rope = (model.rope_cos[p:p + T], model.rope_sin[p:p + T]) if cfg.pos == "rope" else None
    for block in model.blocks:
        x = x + block.drop(block.attn(block.norm1(x), rope, kv_cache=cache))
        h = block.mlp(block.norm2(x))
        x = x + block.drop(h[0] if isinstance(h, tuple) else h)  # MoE returns (out, aux loss)
    cache.pos += T
    return model.lm_head(model.norm_f(x))  # (B, T, V)


def sample_next(logits: torch.Tensor, sampling: SamplingConfig, generator: torch.Generator) -> torch.Tensor:
    """One token id per row of ``logits`` (B, V) under temperature / top-k / top-p."""
    if sampling.temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / sampling.temperature
    if sampling.top_k is not None and sampling.top_k < logits.size(-1):
        kth = logits.topk(sampling.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, -math.inf)
    if sampling.top_p is not None and sampling.top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        # Drop a token when the tokens ranked above it already reach top_p (the first one is always kept).
        drop = probs.cumsum(dim=-1) - probs >= sampling.top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, -math.inf))
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def generate(model, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None = None, *,
             tokenizer=None) -> tuple[Completion, ...]:
    """Sample one continuation per prompt (token-id lists of any lengths), in the prompts' order.

    Prompts of one length are batched together (up to ``MAX_BATCH_ROWS`` rows per forward). Stop strings
    need ``tokenizer`` (it also decodes ``Completion.text`` and gives the end-of-text id).
    """
    sampling = sampling or SamplingConfig()
    if sampling.stop and tokenizer is None:
        raise ConfigError("stop strings need a tokenizer to decode the samples; pass tokenizer=")
    rows = [list(map(int, p)) for p in prompts]
    if not rows or any(not r for r in rows):
        raise ConfigError("generate() needs at least one prompt, each with at least one token")
    by_len: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_len.setdefault(len(r), []).append(i)
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(sampling.seed)
    out: list[Completion | None] = [None] * len(rows)
    was_training = model.training
    model.eval()
    try:
        for length in sorted(by_len):
            ids = by_len[length]
            for s in range(0, len(ids), MAX_BATCH_ROWS):
                chunk = ids[s:s + MAX_BATCH_ROWS]
                prompt = torch.tensor([rows[i] for i in chunk], dtype=torch.long, device=device)
                for i, c in zip(chunk, _generate_batch(model, prompt, sampling, tokenizer, gen), strict=True):
                    out[i] = c
    finally:
        model.train(was_training)
    return tuple(out)


def _generate_batch(model, prompt: torch.Tensor, sampling: SamplingConfig, tokenizer,
                    gen: torch.Generator) -> list[Completion]:
    B, T0 = prompt.shape
    seq_len = model.cfg.seq_len
    if T0 > seq_len:
        raise ConfigError(f"a prompt of {T0} tokens exceeds the model's seq_len={seq_len}; shorten it")
    eot = getattr(tokenizer, "eot_id", None) if sampling.stop_at_eot else None
    budget = min(sampling.max_new_tokens, seq_len - T0 + 1)  # the last token needs no forward
    cache = KVCache(model.cfg, prompt.device)
    logits = forward_cached(model, prompt, cache)[:, -1]  # (B, V)
    tokens: list[list[int]] = [[] for _ in range(B)]
    finish: list[str | None] = [None] * B
    for step in range(budget):
        nxt = sample_next(logits, sampling, gen).tolist()
        for b, t in enumerate(nxt):
            if finish[b] is None:
                finish[b] = _append(tokens[b], t, eot, sampling.stop, tokenizer)
        if all(f is not None for f in finish) or step == budget - 1:
            break
        logits = forward_cached(model, torch.tensor(nxt, device=prompt.device)[:, None], cache)[:, -1]
    return [_completion(tokens[b], finish[b] or "length", sampling.stop, tokenizer) for b in range(B)]


def _append(row: list[int], token: int, eot: int | None, stop: tuple[str, ...], tokenizer) -> str | None:
    """Add ``token`` to a row; return why the row ends now (or None)."""
    if eot is not None and token == eot:
        return "eot"
    row.append(token)
    if stop and any(s in tokenizer.decode(row) for s in stop):
        return "stop"
    return None


def _completion(row: list[int], finish: str, stop: tuple[str, ...], tokenizer) -> Completion:
    text = tokenizer.decode(row) if tokenizer is not None else ""
    if finish == "stop":
        text = text[:min(text.find(s) for s in stop if s in text)]
    return Completion(tuple(row), text, finish)
