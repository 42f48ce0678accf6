"""`prepare`: tokenize a corpus once into memmap shards plus a JSON manifest.

Layout of a prepared directory::

    manifest.json          token counts, dtype, tokenizer, sha256 of every shard, the split, unique tokens
    train_000000.bin ...   raw little-endian uint16 (vocab <= 65536) or uint32 token ids
    val_000000.bin ...
    tokenizer.json         (BPE only)

Documents are split train/val by a hash of their identifier, so the split is document-level (no file
contributes to both) and does not depend on the order or the size of the rest of the corpus. Every document
ends with the end-of-text token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from scalinglab.data.card import build_card, curate, tagged_documents
from scalinglab.data.dedup import DedupConfig
from scalinglab.data.filters import FilterConfig
from scalinglab.data.sources import Document
from scalinglab.data.tokenizers import BPE_FILE, BPETokenizer, ByteTokenizer, Tokenizer
from scalinglab.errors import ConfigError, DataError
from scalinglab.fileio import atomic_write_text

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = "scalinglab-tokens/1"
SPLITS = ("train", "val")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json_atomic(path: Path, obj: object) -> None:
    """Write JSON atomically (temp file, fsync, rename): readers see the old file or the new one, never
    half."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True))


def is_val_document(doc_id: str, val_fraction: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64 < val_fraction


def capped_documents(docs: Iterable[Document], max_bytes: int | None) -> Iterator[Document]:
    """Documents until ``max_bytes`` of UTF-8 text; the last one is cut at a character boundary."""
    total = 0
    for doc in docs:
        if max_bytes is not None and total >= max_bytes:
            return
        raw = doc.text.encode("utf-8")
        if max_bytes is not None and total + len(raw) > max_bytes:
            doc = Document(doc.doc_id, raw[: max_bytes - total].decode("utf-8", errors="ignore"))
            raw = doc.text.encode("utf-8")
        total += len(raw)
        if doc.text:
            yield doc


def _split_documents(docs: list[Document], val_fraction: float, seed: int) -> dict[str, list[Document]]:
    split: dict[str, list[Document]] = {"train": [], "val": []}
    for doc in docs:
        split["val" if is_val_document(doc.doc_id, val_fraction, seed) else "train"].append(doc)
    # Tiny corpora can hash every document to one side; keep at least one document on each.
    if val_fraction > 0 and not split["val"] and len(split["train"]) > 1:
        split["val"].append(split["train"].pop())
    if not split["train"] and len(split["val"]) > 1:
        split["train"].append(split["val"].pop(0))
    return split


class _ShardWriter:
    """Streams token arrays into fixed-size shard files, hashing as it goes."""

    def __init__(self, out: Path, split: str, dtype: np.dtype, shard_tokens: int) -> None:
        self.out, self.split, self.dtype, self.shard_tokens = out, split, dtype, shard_tokens
        self.shards: list[dict] = []
        self._buf: list[np.ndarray] = []
        self._n = 0
        self.distinct = np.zeros(0, dtype=np.int64)

    def add(self, tokens: np.ndarray) -> None:
        self._buf.append(tokens.astype(self.dtype))
        self._n += len(tokens)
        while self._n >= self.shard_tokens:
            self._flush(self.shard_tokens)

    def _flush(self, n: int) -> None:
        data = np.concatenate(self._buf) if self._buf else np.zeros(0, self.dtype)
        chunk, rest = data[:n], data[n:]
        self._buf, self._n = ([rest] if len(rest) else []), len(rest)
        if not len(chunk):
            return
        path = self.out / f"{self.split}_{len(self.shards):06d}.bin"
        with open(path, "wb") as f:
            f.write(chunk.astype(self.dtype.newbyteorder("<")).tobytes())
            f.flush()
            os.fsync(f.fileno())
        self.distinct = np.union1d(self.distinct, np.unique(chunk))
        self.shards.append({"file": path.name, "n_tokens": len(chunk), "sha256": sha256_file(path)})

    def close(self, n_documents: int) -> dict:
        self._flush(self._n)
        return {"n_documents": n_documents, "n_tokens": sum(s["n_tokens"] for s in self.shards),
                "shards": self.shards}


def _make_tokenizer(name: str, docs: list[Document], bpe_vocab_size: int) -> Tokenizer:
    if name == "byte":
        return ByteTokenizer()
    if name == "bpe":
        return BPETokenizer.train((d.text for d in docs), bpe_vocab_size)
    raise ConfigError(f"tokenizer={name!r} is not supported; use 'byte' or 'bpe'")


def _check_args(max_bytes, val_fraction, shard_tokens, bpe_vocab_size) -> None:
    if max_bytes is not None and max_bytes <= 0:
        raise ConfigError(f"max_bytes={max_bytes} must be a positive number of bytes")
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
    if shard_tokens <= 0:
        raise ConfigError(f"shard_tokens={shard_tokens} must be positive")
    if bpe_vocab_size < 300:
        raise ConfigError(f"bpe_vocab_size={bpe_vocab_size} must be at least 300 (256 bytes + merges)")


def check_destination(out_dir: str | Path, overwrite: bool) -> Path:
    """``out_dir`` as a Path if a corpus may be written there (new, empty, or a corpus to overwrite)."""
    out = Path(out_dir)
    if (out / MANIFEST).exists() and not overwrite:
        raise DataError(f"{out} already holds a prepared corpus; pass --overwrite or choose another --out")
    if out.is_file() or (out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists()):
        raise DataError(f"{out} exists and is not a prepared corpus; choose an empty or new --out folder")
    return out


def staging_folder(out: Path) -> Path:
    """A fresh sibling folder to write a corpus into before :func:`publish` renames it into place."""
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, out: Path, manifest: dict, overwrite: bool) -> dict:
    """Write ``manifest`` into ``tmp`` and rename it to ``out``: readers see a whole corpus or none."""
    write_json_atomic(tmp / MANIFEST, manifest)
    if out.exists() and overwrite:
        shutil.rmtree(out)
    try:
        os.replace(tmp, out)
    except OSError:  # another process finished the same folder first: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)
        if (out / MANIFEST).is_file():
            return read_manifest(out)
        raise
    return manifest


def prepare(sources: Iterable[str], out_dir: str | Path, *, tokenizer: str = "byte",
            max_bytes: int | None = None,
            val_fraction: float = 0.1, seed: int = 0, shard_tokens: int = 1 << 24, bpe_vocab_size: int = 4096,
            overwrite: bool = False, dedup: DedupConfig | None = None,
            filters: FilterConfig | None = None) -> dict:
    """Tokenize ``sources`` into shards under ``out_dir`` and return the manifest.

    Parameters
    ----------
    sources : iterable of str
        Source specs: ``"stdlib"``, a text file or folder, or ``"hf:NAME[:SPLIT]"`` (cached data sets only).
    out_dir : path
        Destination; written in a temporary sibling folder and renamed into place when complete.
    tokenizer : {"byte", "bpe"}
    max_bytes : int, optional
        Cap on UTF-8 bytes of text read (whole corpus), for quick demos and tests.
    val_fraction : float
        Expected fraction of *documents* held out for validation.
    dedup, filters : optional
        Quality filters, then exact/near deduplication, before the split (``scalinglab.data.card``); what
        each removed goes into the manifest's ``data_card``.
    """
    _check_args(max_bytes, val_fraction, shard_tokens, bpe_vocab_size)
    sources = list(sources) or ["stdlib"]
    out = check_destination(out_dir, overwrite)
    source_of: dict[str, str] = {}
    docs = list(capped_documents(tagged_documents(sources, source_of), max_bytes))
    if not docs:
        raise DataError(f"corpus {sources} is empty: no readable text documents found")
    docs, curation = curate(docs, dedup=dedup, filters=filters, sources=sources)
    tok = _make_tokenizer(tokenizer, docs, bpe_vocab_size)
    tmp = staging_folder(out)
    by_source: dict[str, int] = {}
    manifest = _write_splits(tok, _split_documents(docs, val_fraction, seed), tmp, shard_tokens,
                             source_of=source_of, tokens_by_source=by_source)
    manifest.update(sources=sources, max_bytes=max_bytes, val_fraction=val_fraction, seed=seed,
                    n_bytes=sum(len(d.text.encode("utf-8")) for d in docs), n_documents=len(docs))
    docs_by_source = Counter(source_of[d.doc_id] for d in docs)
    manifest["data_card"] = build_card(manifest, curation=curation, tokens_by_source=by_source,
                                       docs_by_source=dict(docs_by_source))
    if isinstance(tok, BPETokenizer):
        tok.save(tmp / BPE_FILE)
    manifest = publish(tmp, out, manifest, overwrite)
    log.info("prepared %s: %d train / %d val tokens", out, manifest["splits"]["train"]["n_tokens"],
             manifest["splits"]["val"]["n_tokens"])
    return manifest


def _write_splits(tok: Tokenizer, split: dict[str, list[Document]], out: Path, shard_tokens: int, *,
                  source_of: dict[str, str] | None = None,
                  tokens_by_source: dict[str, int] | None = None) -> dict:
    def encoded(docs: list[Document]) -> Iterator[np.ndarray]:
        for doc in docs:
            tokens = np.asarray(tok.encode(doc.text), dtype=np.int64)
            if tokens_by_source is not None and source_of is not None:  # the data card's per-source share
                src = source_of.get(doc.doc_id, "?")
                tokens_by_source[src] = tokens_by_source.get(src, 0) + len(tokens) + 1  # + end-of-text
            yield tokens

    return write_token_splits(tok, {name: encoded(split[name]) for name in SPLITS}, out, shard_tokens)


def write_token_splits(tok: Tokenizer, split: dict[str, Iterable[np.ndarray]], out: Path,
                       shard_tokens: int) -> dict:
    """Write documents given as token arrays (each gets the end-of-text token) into ``out``'s shards; returns
    the manifest's core (format, tokenizer, dtype, splits with sha256, unique tokens)."""
    dtype = np.dtype(np.uint16 if tok.vocab_size <= 1 << 16 else np.uint32)
    eot = np.array([tok.eot_id], dtype=np.int64)
    splits, distinct = {}, np.zeros(0, dtype=np.int64)
    for name in SPLITS:
        writer, n_docs = _ShardWriter(out, name, dtype, shard_tokens), 0
        for tokens in split[name]:
            writer.add(np.concatenate([np.asarray(tokens, dtype=np.int64), eot]))
            n_docs += 1
        splits[name] = writer.close(n_docs)
        distinct = np.union1d(distinct, writer.distinct)
    if splits["train"]["n_tokens"] < 2:
        raise DataError("corpus has fewer than 2 training tokens; raise --max-bytes or add documents")
    return {"format": FORMAT, "tokenizer": tok.name, "vocab_size": int(tok.vocab_size),
            "eot_id": int(tok.eot_id),
            "dtype": dtype.name, "splits": splits,
            # Unique data in the sense of Muennighoff et al. 2023 (U_D): epochs = tokens seen /
            # n_unique_tokens.
            "n_unique_tokens": splits["train"]["n_tokens"], "n_distinct_token_ids": len(distinct)}


def read_manifest(data_dir: str | Path) -> dict:
    """Load ``manifest.json`` of a prepared directory (DataError if missing or malformed)."""
    path = Path(data_dir) / MANIFEST
    if not path.is_file():
        raise DataError(f"{path} not found; run `scalinglab data prepare --out {data_dir}` first")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err.msg if hasattr(err, 'msg') else err}); "
                        "re-prepare") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path} is not a scalinglab manifest (format {FORMAT}); re-prepare the corpus")
    return manifest


def corpus_identity(data_dir: str | Path) -> dict:
    """What a prepared corpus *is*, independent of where it lies: tokenizer, dtype and every shard's token
    count and sha256 (from the manifest), plus the sha256 of ``tokenizer.json`` for BPE.

    Two folders with equal identities hold the same tokens, so a run may resume from either (a moved or copied
    corpus); :func:`identity_differences` names what differs otherwise.
    """
    manifest = read_manifest(data_dir)
    tok_file = Path(data_dir) / BPE_FILE
    try:
        splits = {name: [{"file": s["file"], "n_tokens": int(s["n_tokens"]), "sha256": s["sha256"]}
                         for s in info["shards"]] for name, info in manifest["splits"].items()}
        return {"tokenizer": manifest["tokenizer"], "vocab_size": int(manifest["vocab_size"]),
                "eot_id": manifest.get("eot_id"), "dtype": manifest["dtype"], "splits": splits,
                "tokenizer_sha256": sha256_file(tok_file) if tok_file.is_file() else None}
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(f"{Path(data_dir) / MANIFEST} is malformed ({err!r}); re-prepare the corpus") from err


def identity_hash(identity: dict) -> str:
    """Short content hash of a :func:`corpus_identity` (what a config fingerprint holds)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def identity_differences(ours: dict, theirs: dict) -> list[str]:
    """What differs between two corpus identities, in words (empty: same content)."""
    out = [f"{key} {ours.get(key)!r} vs {theirs.get(key)!r}"
           for key in ("tokenizer", "vocab_size", "eot_id", "dtype", "tokenizer_sha256")
           if ours.get(key) != theirs.get(key)]
    for split in sorted(set(ours.get("splits", {})) | set(theirs.get("splits", {}))):
        a, b = ours.get("splits", {}).get(split, []), theirs.get("splits", {}).get(split, [])
        if len(a) != len(b):
            out.append(f"{split} split has {len(a)} shards vs {len(b)}")
            continue
        for sa, sb in zip(a, b, strict=True):
            if sa != sb:
                out.append(f"shard {sa['file']} differs ({sa['n_tokens']} tokens, sha256 {sa['sha256'][:12]} "
                           f"vs "
                           f"{sb['n_tokens']} tokens, sha256 {sb['sha256'][:12]})")
    return out
