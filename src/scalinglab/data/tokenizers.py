"""Tokenizers: byte-level (default, 256 byte values + special tokens) and an optional BPE trained locally.

Byte-level needs nothing and is exactly reversible; BPE uses the ``tokenizers`` library when it is installed
and is trained on the corpus being prepared (no download of a pretrained vocabulary).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import numpy as np

from scalinglab.errors import ConfigError, DataError

EOT = "<|endoftext|>"
BPE_FILE = "tokenizer.json"


class Tokenizer(Protocol):
    name: str
    vocab_size: int
    eot_id: int

    def encode(self, text: str) -> np.ndarray: ...

    def decode(self, ids: Iterable[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255, then specials (``<|endoftext|>`` = 256 separates documents)."""

    name = "byte"
    specials = (EOT,)

    def __init__(self) -> None:
        self.vocab_size = 256 + len(self.specials)
        self.eot_id = 256

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class BPETokenizer:
    """Byte-level BPE from the ``tokenizers`` library, trained on the corpus itself."""

    name = "bpe"

    def __init__(self, tok) -> None:
        self._tok = tok
        self.vocab_size = tok.get_vocab_size()
        self.eot_id = tok.token_to_id(EOT)

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> BPETokenizer:
        tokenizers = _import_tokenizers()
        tok = tokenizers.Tokenizer(tokenizers.models.BPE())
        tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = tokenizers.decoders.ByteLevel()
        trainer = tokenizers.trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=[EOT], show_progress=False,
            initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer=trainer)
        return cls(tok)

    @classmethod
    def load(cls, path: Path) -> BPETokenizer:
        tokenizers = _import_tokenizers()
        return cls(tokenizers.Tokenizer.from_file(str(path)))

    def save(self, path: Path) -> None:
        self._tok.save(str(path))

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tok.encode(text).ids, dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids])


def _import_tokenizers():
    try:
        import tokenizers
        import tokenizers.decoders
        import tokenizers.models
        import tokenizers.pre_tokenizers
        import tokenizers.trainers
    except ImportError as err:
        raise ConfigError("tokenizer 'bpe' needs the 'tokenizers' package (pip install tokenizers)") from err
    return tokenizers


def load_tokenizer(data_dir: str | Path, name: str) -> Tokenizer:
    """The tokenizer a prepared data directory was made with."""
    if name == "byte":
        return ByteTokenizer()
    if name == "bpe":
        path = Path(data_dir) / BPE_FILE
        if not path.is_file():
            raise DataError(f"{path} is missing; re-run `scalinglab data prepare --tokenizer bpe`")
        return BPETokenizer.load(path)
    raise DataError(f"unknown tokenizer {name!r} in {data_dir}; expected 'byte' or 'bpe'")
