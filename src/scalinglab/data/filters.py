"""Heuristic quality filters in the spirit of Gopher's rules (Rae et al. 2021, App. A.1.1), each one named.

Every rule is a predicate on one document's text that says why it fails, so a prepared corpus can report how
many documents each rule removed (the first failing rule is charged). Thresholds are Gopher's, written for
English web text: on source code (the default stdlib corpus) several of them remove most files, so filtering
is opt-in (``data prepare --filter gopher``) and every threshold is a field of :class:`FilterConfig`.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from scalinglab.data.sources import Document
from scalinglab.errors import ConfigError

_WORD = re.compile(r"\S+")
_BULLETS = ("•", "-", "*", "·", "‣", "◦")


@dataclass(frozen=True, kw_only=True)
class FilterConfig:
    """Gopher's thresholds (Rae et al. 2021, App. A.1.1); ``rules`` picks which run (all by default)."""

    min_words: int = 50
    max_words: int = 100_000
    min_mean_word_length: float = 3.0
    max_mean_word_length: float = 10.0
    max_symbol_word_ratio: float = 0.1  # '#' and '...' per word
    max_bullet_line_fraction: float = 0.9
    max_ellipsis_line_fraction: float = 0.3
    min_alpha_word_fraction: float = 0.8
    max_duplicate_line_fraction: float = 0.3
    max_duplicate_line_char_fraction: float = 0.2
    max_top_2gram_char_fraction: float = 0.20  # Gopher: 0.20, 0.18, 0.16 for the top 2-, 3-, 4-gram
    max_dup_5gram_char_fraction: float = 0.15  # Gopher: 0.15 (5-grams) down to 0.10 (10-grams)
    rules: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name != "rules" and not (isinstance(v, int | float) and v >= 0):
                raise ConfigError(f"filter {f.name}={v!r} must be a number >= 0")
        if self.min_words > self.max_words:
            raise ConfigError(f"filter min_words={self.min_words} exceeds max_words={self.max_words}")
        unknown = sorted(set(self.rules or ()) - set(RULES))
        if unknown:
            raise ConfigError(f"unknown filter rule(s) {unknown}; choose from {sorted(RULES)}")

    def active(self) -> tuple[str, ...]:
        return tuple(RULES) if self.rules is None else tuple(r for r in RULES if r in self.rules)


@dataclass(frozen=True)
class FilterResult:
    """Kept documents and, per rule, the ids it removed."""

    kept: tuple[Document, ...]
    removed: dict[str, tuple[str, ...]]
    n_input: int

    def to_dict(self) -> dict:
        return {"n_input": self.n_input, "n_kept": len(self.kept),
                "removed_by_rule": {r: len(ids) for r, ids in self.removed.items()}}

    def summary(self) -> str:
        """``rule: count`` for every rule that removed something (for error messages and logs)."""
        parts = [f"{r} removed {len(ids)}" for r, ids in self.removed.items() if ids]
        return ", ".join(parts) or "no rule removed anything"


def _stats(text: str) -> tuple[list[str], list[str]]:
    return _WORD.findall(text), [ln.strip() for ln in text.splitlines() if ln.strip()]


def _word_count(c: FilterConfig, words, lines, text) -> bool:
    return c.min_words <= len(words) <= c.max_words


def _mean_word_length(c, words, lines, text) -> bool:
    mean = sum(map(len, words)) / max(len(words), 1)
    return c.min_mean_word_length <= mean <= c.max_mean_word_length


def _symbol_ratio(c, words, lines, text) -> bool:
    symbols = text.count("#") + text.count("...") + text.count("…")
    return symbols / max(len(words), 1) <= c.max_symbol_word_ratio


def _bullet_lines(c, words, lines, text) -> bool:
    return sum(ln.startswith(_BULLETS) for ln in lines) / max(len(lines), 1) <= c.max_bullet_line_fraction


def _ellipsis_lines(c, words, lines, text) -> bool:
    ends = sum(ln.endswith(("...", "…")) for ln in lines)
    return ends / max(len(lines), 1) <= c.max_ellipsis_line_fraction


def _alpha_words(c, words, lines, text) -> bool:
    alpha = sum(any(ch.isalpha() for ch in w) for w in words)
    return alpha / max(len(words), 1) >= c.min_alpha_word_fraction


def _duplicate_lines(c, words, lines, text) -> bool:
    counts = Counter(lines)
    dup = [ln for ln in lines if counts[ln] > 1]
    chars = sum(map(len, lines))
    return (len(dup) / max(len(lines), 1) <= c.max_duplicate_line_fraction
            and sum(map(len, dup)) / max(chars, 1) <= c.max_duplicate_line_char_fraction)


def _top_2gram(c, words, lines, text) -> bool:
    if len(words) < 2:
        return True
    grams = Counter(zip(words, words[1:], strict=False))
    (a, b), count = grams.most_common(1)[0]
    return count * (len(a) + len(b)) / max(sum(map(len, words)), 1) <= c.max_top_2gram_char_fraction


def _dup_5grams(c, words, lines, text) -> bool:
    n = 5
    if len(words) < n:
        return True
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    counts = Counter(grams)
    covered = [False] * len(words)  # characters of words inside any repeated 5-gram (Gopher counts chars)
    for i, g in enumerate(grams):
        if counts[g] > 1:
            covered[i:i + n] = [True] * n
    dup_chars = sum(len(w) for w, hit in zip(words, covered, strict=True) if hit)
    return dup_chars / max(sum(map(len, words)), 1) <= c.max_dup_5gram_char_fraction


RULES: dict[str, Callable[..., bool]] = {
    "word_count": _word_count,
    "mean_word_length": _mean_word_length,
    "symbol_word_ratio": _symbol_ratio,
    "bullet_lines": _bullet_lines,
    "ellipsis_lines": _ellipsis_lines,
    "alpha_words": _alpha_words,
    "duplicate_lines": _duplicate_lines,
    "top_2gram": _top_2gram,
    "duplicate_5grams": _dup_5grams,
}


def first_failing_rule(text: str, config: FilterConfig) -> str | None:
    """The name of the first active rule ``text`` fails, or None when it passes them all."""
    words, lines = _stats(text)
    for name in config.active():
        if not RULES[name](config, words, lines, text):
            return name
    return None


def apply_filters(docs: Iterable[Document], config: FilterConfig | None = None) -> FilterResult:
    """Keep the documents that pass every active rule; charge each removal to the first rule it fails."""
    config = config or FilterConfig()
    removed: dict[str, list[str]] = {r: [] for r in config.active()}
    kept, n = [], 0
    for doc in docs:
        n += 1
        rule = first_failing_rule(doc.text, config)
        if rule is None:
            kept.append(doc)
        else:
            removed[rule].append(doc.doc_id)
    return FilterResult(kept=tuple(kept), removed={r: tuple(v) for r, v in removed.items()}, n_input=n)
