"""Corpus sources, tokenizers, memmap shards and exactly resumable loaders (imports torch via the loader)."""

from scalinglab.data.loader import BatchLoader, TokenSplit, val_windows
from scalinglab.data.prepare import prepare, read_manifest
from scalinglab.data.sources import Document, open_source, stdlib_documents
from scalinglab.data.tokenizers import ByteTokenizer, load_tokenizer

__all__ = ["BatchLoader", "ByteTokenizer", "Document", "TokenSplit", "load_tokenizer", "open_source", "prepare",
           "read_manifest", "stdlib_documents", "val_windows"]
