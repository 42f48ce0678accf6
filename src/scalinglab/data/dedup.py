"""Exact and near-duplicate removal: a content hash, then MinHash + LSH from ``datasketch``.

Near duplicates follow Broder (1997, "On the resemblance and containment of documents"): a document is its set
of word n-gram shingles, two documents are alike by the Jaccard similarity of those sets, MinHash estimates it
from ``num_perm`` permuted minima, and banded LSH (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*
ch. 3.4) finds candidate pairs without comparing all of them. Lee et al. (2022, "Deduplicating Training Data
Makes Language Models Better") and Gopher (Rae et al. 2021, App. A) deduplicate this way with 5-gram shingles.

Deterministic by construction (users of other tools report clusters that change from run to run):
documents are visited in the order given, the MinHash permutations come from ``seed``, a candidate set from
the LSH is resolved to its *earliest* representative, and a candidate counts only if its MinHash estimate
reaches the threshold. The first document of a cluster is kept. Streaming: documents are read one at a time;
the index holds one MinHash (``num_perm`` uint64 values) and its LSH band keys per kept document, so its size
is ``index_bytes`` ≈ kept × num_perm × 8 × 2 (stated in the result).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from scalinglab.data.sources import Document
from scalinglab.errors import ConfigError, DataError

_WORD = re.compile(r"\S+")


@dataclass(frozen=True, kw_only=True)
class DedupConfig:
    """What counts as a duplicate. ``near=False`` keeps only the exact (content-hash) pass."""

    ngram: int = 5
    num_perm: int = 128
    threshold: float = 0.8
    seed: int = 1
    exact: bool = True
    near: bool = True
    # datasketch's (false positive, false negative) weights when it picks the LSH bands: recall-heavy, since
    # every candidate is then checked against the threshold with its MinHash estimate (precision's guard).
    lsh_weights: tuple[float, float] = (0.1, 0.9)

    def __post_init__(self) -> None:
        if not (isinstance(self.ngram, int) and 1 <= self.ngram <= 64):
            raise ConfigError(f"dedup ngram={self.ngram!r}; give a word n-gram length, 1 to 64 (5 is usual)")
        if not (isinstance(self.num_perm, int) and 16 <= self.num_perm <= 4096):
            raise ConfigError(f"dedup num_perm={self.num_perm!r}; give 16 to 4096 (128 is usual)")
        w = self.lsh_weights
        if len(w) != 2 or min(w) < 0 or abs(sum(w) - 1) > 1e-9:
            raise ConfigError(f"dedup lsh_weights={w!r}; give (false-positive, false-negative) weights >= 0 "
                              "summing to 1")
        if not 0 < self.threshold < 1:
            raise ConfigError(f"dedup threshold={self.threshold!r}; give a Jaccard similarity in (0, 1), "
                              "e.g. 0.8")

    def to_dict(self) -> dict:
        return {"ngram": self.ngram, "num_perm": self.num_perm, "threshold": self.threshold,
                "seed": self.seed, "exact": self.exact, "near": self.near,
                "lsh_weights": list(self.lsh_weights)}


@dataclass(frozen=True)
class DedupResult:
    """Kept documents and the clusters found (each cluster: kept doc_id first, then its duplicates)."""

    kept: tuple[Document, ...]
    exact_clusters: tuple[tuple[str, ...], ...]
    near_clusters: tuple[tuple[str, ...], ...]
    n_input: int
    index_entries: int
    index_bytes: int
    config: DedupConfig = field(default_factory=DedupConfig)

    @property
    def n_exact(self) -> int:
        return sum(len(c) - 1 for c in self.exact_clusters)

    @property
    def n_near(self) -> int:
        return sum(len(c) - 1 for c in self.near_clusters)

    def to_dict(self) -> dict:
        """Counts for the data card (clusters are listed up to 20, the rest counted)."""
        return {"config": self.config.to_dict(), "n_input": self.n_input, "n_kept": len(self.kept),
                "exact_duplicates": self.n_exact, "near_duplicates": self.n_near,
                "exact_clusters": len(self.exact_clusters), "near_clusters": len(self.near_clusters),
                "index_entries": self.index_entries, "index_bytes": self.index_bytes,
                "near_cluster_examples": [list(c) for c in self.near_clusters[:20]]}


def shingles(text: str, n: int) -> set[bytes]:
    """Word n-grams of ``text`` (whitespace-split, lower-cased) as UTF-8 bytes; shorter texts give one."""
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < n:
        return {" ".join(words).encode()} if words else set()
    return {" ".join(words[i:i + n]).encode() for i in range(len(words) - n + 1)}


def content_hash(text: str) -> str:
    """sha256 of the text as stored (exact duplicates only; near ones are MinHash's job)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class _NearIndex:
    """The MinHash LSH index of the kept documents, in insertion order."""

    def __init__(self, config: DedupConfig) -> None:
        from datasketch import MinHashLSH

        self.config = config
        self.lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm,
                              weights=tuple(config.lsh_weights))
        self.order: dict[str, int] = {}
        self.hashes: dict[str, object] = {}

    def minhash(self, text: str):
        from datasketch import MinHash

        m = MinHash(num_perm=self.config.num_perm, seed=self.config.seed)
        m.update_batch(sorted(shingles(text, self.config.ngram)))
        return m

    def match(self, m) -> str | None:
        """The earliest kept document whose estimated Jaccard with ``m`` reaches the threshold."""
        hits = [k for k in self.lsh.query(m) if self.hashes[k].jaccard(m) >= self.config.threshold]
        return min(hits, key=self.order.__getitem__) if hits else None

    def add(self, key: str, m) -> None:
        self.order[key] = len(self.order)
        self.hashes[key] = m
        self.lsh.insert(key, m)


def deduplicate(docs: Iterable[Document], config: DedupConfig | None = None) -> DedupResult:
    """Drop exact, then near duplicates from ``docs`` (streamed in order; the first of a cluster is kept).

    Parameters
    ----------
    docs : iterable of Document
        Any stream of documents (e.g. one shard after another); doc_ids must be unique.
    config : DedupConfig, optional
        Shingle length, permutations, threshold, seed; defaults 5, 128, 0.8, 1.
    """
    config = config or DedupConfig()
    exact: dict[str, list[str]] = {}
    near: dict[str, list[str]] = {}
    index = _NearIndex(config) if config.near else None
    kept: list[Document] = []
    seen_ids: set[str] = set()
    for doc in _unique_ids(docs, seen_ids):
        if config.exact:
            h = content_hash(doc.text)
            if h in exact:
                exact[h].append(doc.doc_id)
                continue
            exact[h] = [doc.doc_id]
        if index is not None:
            m = index.minhash(doc.text)
            rep = index.match(m)
            if rep is not None:
                near[rep].append(doc.doc_id)
                continue
            index.add(doc.doc_id, m)
            near[doc.doc_id] = [doc.doc_id]
        kept.append(doc)
    entries = len(index.order) if index is not None else 0
    return DedupResult(kept=tuple(kept), n_input=len(seen_ids), config=config,
                       exact_clusters=tuple(tuple(c) for c in exact.values() if len(c) > 1),
                       near_clusters=tuple(tuple(c) for c in near.values() if len(c) > 1),
                       index_entries=entries, index_bytes=entries * config.num_perm * 8 * 2)


def _unique_ids(docs: Iterable[Document], seen: set[str]) -> Iterator[Document]:
    for doc in docs:
        if doc.doc_id in seen:
            raise DataError(f"document id {doc.doc_id!r} appears twice; dedup needs unique ids per document")
        seen.add(doc.doc_id)
        yield doc
