"""Corpus sources, tokenizers, memmap shards and exactly resumable loaders.

Only the loader imports torch; it is loaded on first use, so ``scalinglab data prepare`` and config parsing
stay torch-free.
"""

from scalinglab.data.prepare import prepare, read_manifest
from scalinglab.data.sources import Document, open_source, stdlib_documents
from scalinglab.data.tokenizers import ByteTokenizer, load_tokenizer

__all__ = ["BatchLoader", "ByteTokenizer", "Document", "TokenSplit", "load_tokenizer", "open_source",
           "prepare",
           "read_manifest", "stdlib_documents", "val_windows"]


def __getattr__(name: str):
    if name in ("BatchLoader", "TokenSplit", "val_windows"):
        from scalinglab.data import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'scalinglab.data' has no attribute {name!r}")
