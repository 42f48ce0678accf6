"""Synthetic corpora: documents sampled from a trained model, written in the prepared-corpus format.

A synthetic corpus is an ordinary prepared corpus (shards, sha256, document-level train/val split, data card)
whose manifest also records its **provenance**: the run and checkpoint that sampled it, the sampling
parameters and the seed (``manifest["synthetic"]``). It keeps the run's tokenizer (the token ids are written
as sampled, never decoded and re-encoded), so it mixes with the run's own corpus at a set ratio through the
loader's weighted mixtures (``mixture = [["corpus", 0.75], ["synth", 0.25]]`` in a train config).

The sampling itself (a model, the KV-cache sampler) lives in :mod:`scalinglab.study.synth`; this module is
torch-free.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from scalinglab.data.card import build_card
from scalinglab.data.prepare import (
    SPLITS,
    check_destination,
    is_val_document,
    publish,
    staging_folder,
    write_token_splits,
)
from scalinglab.data.tokenizers import BPE_FILE, Tokenizer
from scalinglab.errors import ConfigError
from scalinglab.validate import integer, positive_int

SOURCE_PREFIX = "synth:"


@dataclass(frozen=True, kw_only=True)
class SynthConfig:
    """What to sample and how.

    Parameters
    ----------
    n_tokens : int
        Tokens of the corpus (train + val, end-of-text tokens included); the last document is cut to fit.
    temperature, top_k, top_p : sampling (see :class:`scalinglab.model.generate.SamplingConfig`).
    seed : int
        Same run, checkpoint, parameters and seed: the same corpus.
    rows : int
        Documents sampled per call of the sampler (one batch; each starts from the end-of-text token).
    val_fraction : float
        Expected fraction of documents held out (by a hash of the document id, as ``prepare`` does).
    shard_tokens : int
        Tokens per shard file.
    """

    n_tokens: int
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int = 0
    rows: int = 64
    val_fraction: float = 0.05
    shard_tokens: int = 1 << 24

    def __post_init__(self) -> None:
        for name in ("n_tokens", "rows", "shard_tokens"):
            positive_int(f"SynthConfig.{name}", getattr(self, name))
        if self.n_tokens < 4:
            raise ConfigError(f"SynthConfig.n_tokens={self.n_tokens} is too small for a train and a val "
                              "document; ask for at least 4 tokens")
        integer("SynthConfig.seed", self.seed, minimum=0)
        vf = self.val_fraction
        if isinstance(vf, bool) or not isinstance(vf, (int, float)) or not 0 <= vf < 1 or math.isnan(vf):
            raise ConfigError(f"SynthConfig.val_fraction={vf!r} must be in [0, 1)")

    def round_seed(self, index: int) -> int:
        """The sampler's seed for call ``index``: distinct across calls and across corpus seeds."""
        return self.seed * 1_000_003 + index

    def sampling_dict(self) -> dict:
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p,
                "prompt": "end-of-text token", "rows_per_call": self.rows}


def doc_id(index: int) -> str:
    return f"{SOURCE_PREFIX}{index:08d}"


def write_synthetic_corpus(documents: Sequence[Sequence[int]], tok: Tokenizer, out_dir: str | Path,
                           cfg: SynthConfig, provenance: dict, *, tokenizer_dir: str | Path | None = None,
                           overwrite: bool = False) -> dict:
    """Write sampled ``documents`` (token ids without end-of-text) as a prepared corpus; returns its
    manifest. ``provenance`` (run, checkpoint, step, ...) goes into ``manifest["synthetic"]`` with the
    sampling parameters; ``tokenizer_dir`` is the corpus whose ``tokenizer.json`` a BPE corpus copies."""
    out = check_destination(out_dir, overwrite)
    split: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for i, doc in enumerate(documents):
        name = "val" if is_val_document(doc_id(i), cfg.val_fraction, cfg.seed) else "train"
        split[name].append(np.asarray(doc))
    if cfg.val_fraction > 0 and not split["val"] and len(split["train"]) > 1:  # as prepare() does
        split["val"].append(split["train"].pop())
    tmp = staging_folder(out)
    try:
        manifest = write_token_splits(tok, split, tmp, cfg.shard_tokens)
        if tokenizer_dir is not None and (Path(tokenizer_dir) / BPE_FILE).is_file():
            shutil.copy2(Path(tokenizer_dir) / BPE_FILE, tmp / BPE_FILE)
        return publish(tmp, out, _with_provenance(manifest, documents, cfg, provenance), overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone after publish; what a failure left otherwise


def _with_provenance(manifest: dict, documents: Sequence[Sequence[int]], cfg: SynthConfig,
                     provenance: dict) -> dict:
    source = SOURCE_PREFIX + str(provenance.get("run", "?"))
    n_tokens = sum(len(d) + 1 for d in documents)
    manifest.update(sources=[source], max_bytes=None, val_fraction=cfg.val_fraction, seed=cfg.seed,
                    n_bytes=None, n_documents=len(documents),
                    synthetic={**provenance, "sampling": cfg.sampling_dict(), "seed": cfg.seed,
                               "n_tokens_requested": cfg.n_tokens, "config": asdict(cfg)})
    manifest["data_card"] = build_card(manifest, curation={}, tokens_by_source={source: n_tokens},
                                       docs_by_source={source: len(documents)})
    return manifest
