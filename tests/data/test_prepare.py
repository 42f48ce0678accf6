"""`prepare`: manifest contents, hashes, document-level split, bad input, BPE."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from scalinglab.data.loader import TokenSplit
from scalinglab.data.prepare import prepare, read_manifest
from scalinglab.data.sources import stdlib_documents
from scalinglab.data.tokenizers import ByteTokenizer
from scalinglab.errors import ConfigError, DataError
from tests.data.conftest import write_texts


def test_manifest_counts_and_sha256_match_the_shards(tiny_corpus):
    m = read_manifest(tiny_corpus)
    assert m["tokenizer"] == "byte" and m["vocab_size"] == 257 and m["dtype"] == "uint16"
    assert m["n_bytes"] == 300_000
    total = 0
    for split in ("train", "val"):
        info = m["splits"][split]
        assert info["n_tokens"] > 0 and info["n_documents"] > 0
        for shard in info["shards"]:
            raw = (tiny_corpus / shard["file"]).read_bytes()
            assert hashlib.sha256(raw).hexdigest() == shard["sha256"]
            assert len(raw) == 2 * shard["n_tokens"]
            total += shard["n_tokens"]
    # Byte tokens: every text byte plus one end-of-text per document.
    assert total == m["n_bytes"] + m["n_documents"]
    assert m["n_unique_tokens"] == m["splits"]["train"]["n_tokens"]
    assert 50 < m["n_distinct_token_ids"] <= 257


def test_split_is_by_document_and_tokens_decode_to_the_source(tiny_corpus):
    m = read_manifest(tiny_corpus)
    val = TokenSplit(tiny_corpus, "val")
    ids = np.concatenate([np.asarray(s) for s in val.shards])
    texts = [d.text for d in stdlib_documents()]
    pieces = np.split(ids, np.flatnonzero(ids == 256) + 1)
    decoded = [bytes(p[p < 256].astype(np.uint8)).decode("utf-8") for p in pieces if len(p)]
    assert len(decoded) == m["splits"]["val"]["n_documents"]
    assert ByteTokenizer().decode(ids[: len(pieces[0])]) == decoded[0]
    for doc in decoded[:-1]:  # the last document may be cut by --max-bytes
        assert doc in texts  # whole documents, not fragments of a train document


def test_prepare_is_deterministic(tmp_path):
    a = prepare(["stdlib"], tmp_path / "a", max_bytes=50_000)
    b = prepare(["stdlib"], tmp_path / "b", max_bytes=50_000)
    assert json.dumps(a["splits"], sort_keys=True) == json.dumps(b["splits"], sort_keys=True)


def test_corrupted_or_truncated_shard_is_refused(tmp_path):
    out = tmp_path / "c"
    m = prepare([str(write_texts(tmp_path / "t", {f"{i}.txt": "hello world " * 50 for i in range(12)}))], out)
    shard = out / m["splits"]["train"]["shards"][0]["file"]
    raw = bytearray(shard.read_bytes())
    raw[3] ^= 1
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="sha256"):
        TokenSplit(out, "train")
    shard.write_bytes(bytes(raw[:-2]))
    with pytest.raises(DataError, match="truncated"):
        TokenSplit(out, "train", verify=False)


def test_bad_input_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare([str(tmp_path / "nope")], tmp_path / "o1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        prepare([str(tmp_path / "empty")], tmp_path / "o2")
    with pytest.raises(ConfigError, match="max_bytes"):
        prepare(["stdlib"], tmp_path / "o3", max_bytes=0)
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "empty")
    prepare(["stdlib"], tmp_path / "o4", max_bytes=20_000)
    with pytest.raises(DataError, match="already"):
        prepare(["stdlib"], tmp_path / "o4", max_bytes=20_000)


def test_bpe_tokenizer_trains_locally_and_round_trips(tmp_path):
    pytest.importorskip("tokenizers")
    from scalinglab.data.tokenizers import load_tokenizer

    m = prepare(["stdlib"], tmp_path / "bpe", tokenizer="bpe", bpe_vocab_size=600, max_bytes=60_000)
    assert m["tokenizer"] == "bpe" and m["vocab_size"] == 600
    assert m["splits"]["train"]["n_tokens"] < 60_000 * 0.8  # merges compress the bytes
    tok = load_tokenizer(tmp_path / "bpe", "bpe")
    text = "def f(x):\n    return x + 1  # ünïcode\n"
    assert tok.decode(tok.encode(text)) == text


def test_hf_source_never_downloads(tmp_path):
    import importlib.util

    if importlib.util.find_spec("datasets") is not None:
        pytest.skip("datasets is installed; this checks the not-installed path")
    with pytest.raises(DataError, match="datasets"):
        prepare(["hf:some/dataset"], tmp_path / "hf")


def test_large_vocabularies_use_uint32_shards(tmp_path):
    from scalinglab.data.prepare import MANIFEST, _write_splits, write_json_atomic
    from scalinglab.data.sources import Document

    class WideTokenizer:  # ids above 65535 must survive the round trip
        name, vocab_size, eot_id = "wide", 70_000, 69_999

        def encode(self, text):
            return np.array([65_000 + ord(c) for c in text], dtype=np.int64)

    docs = {"train": [Document("a", "hello world")], "val": [Document("b", "bye")]}
    manifest = _write_splits(WideTokenizer(), docs, tmp_path, shard_tokens=100)
    write_json_atomic(tmp_path / MANIFEST, manifest)
    assert manifest["dtype"] == "uint32"
    ids = np.asarray(TokenSplit(tmp_path, "train").shards[0])
    assert ids.tolist() == [65_000 + ord(c) for c in "hello world"] + [69_999]


def test_hf_source_is_read_offline_when_installed(tmp_path, monkeypatch):
    """With `datasets` importable, the source forces offline mode before loading; a data set not on disk is a
    DataError, never a download."""
    import os
    import sys
    import types

    seen = {}

    def load_dataset(name, split):
        seen["offline"] = (os.environ.get("HF_DATASETS_OFFLINE"), os.environ.get("HF_HUB_OFFLINE"))
        if name == "not/cached":
            raise FileNotFoundError("would need the network")
        return [{"text": f"document {i} " * 40} for i in range(20)] + [{"text": ""}]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")  # restored after the test; the source must set it
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    m = prepare(["hf:some/set"], tmp_path / "hf")
    assert seen["offline"] == ("1", "1")
    assert m["n_documents"] == 20 and m["splits"]["train"]["n_tokens"] > 0
    with pytest.raises(DataError, match="not available offline"):
        prepare(["hf:not/cached"], tmp_path / "hf2")
