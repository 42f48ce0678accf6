"""`scalinglab data synth`: a corpus sampled from a trained run, with provenance, reproducible by seed, that
mixes with real data at a set ratio (issue 14)."""

from __future__ import annotations

import pytest

from scalinglab.data.loader import BatchLoader, TokenSplit
from scalinglab.data.prepare import read_manifest
from tests.conftest import exit2
from tests.train.conftest import tiny_config

SYNTH_TOKENS = 6000


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
    from scalinglab.train import run

    run_dir = tmp_path_factory.mktemp("synth") / "run"
    run(tiny_config(tiny_corpus, n_tokens=64 * 8 * 6, eval_every=None, checkpoint_every=None), run_dir)
    return run_dir


def _synth(run_dir, out, *extra: str) -> dict:
    from scalinglab.cli.app import main

    try:
        main(["data", "synth", str(run_dir), "--tokens", str(SYNTH_TOKENS), "--out", str(out), "--rows", "16",
              *extra])
    except SystemExit as exc:  # typer may end a successful command with exit 0
        assert exc.code in (0, None)
    return read_manifest(out)


def _hashes(manifest: dict) -> list[str]:
    return [s["sha256"] for split in manifest["splits"].values() for s in split["shards"]]


def test_synth_corpus_has_provenance_and_exact_size(trained, tiny_corpus, tmp_path):
    manifest = _synth(trained, tmp_path / "s", "--temperature", "0.8", "--seed", "3")
    splits = manifest["splits"]
    assert splits["train"]["n_tokens"] + splits["val"]["n_tokens"] == SYNTH_TOKENS
    assert splits["val"]["n_tokens"] > 0 and manifest["n_documents"] == sum(s["n_documents"]
                                                                             for s in splits.values())
    prov = manifest["synthetic"]
    assert prov["run"] == str(trained.resolve()) and prov["checkpoint"].startswith("step_")
    assert prov["step"] == 6 and prov["seed"] == 3 and prov["sampling"]["temperature"] == 0.8
    assert manifest["tokenizer"] == read_manifest(tiny_corpus)["tokenizer"]
    assert list(manifest["data_card"]["sources"]) == [f"synth:{trained.resolve()}"]
    TokenSplit(tmp_path / "s", "train", verify=True)  # shards match their sha256


def test_same_seed_same_corpus_other_seed_another(trained, tmp_path):
    a = _synth(trained, tmp_path / "a", "--seed", "1")
    b = _synth(trained, tmp_path / "b", "--seed", "1")
    c = _synth(trained, tmp_path / "c", "--seed", "2")
    assert _hashes(a) == _hashes(b)
    assert _hashes(a) != _hashes(c)


def test_synthetic_data_mixes_with_real_data_at_a_set_ratio(trained, tiny_corpus, tmp_path):
    from scalinglab.train import run

    _synth(trained, tmp_path / "s")
    loader = BatchLoader([tiny_corpus, tmp_path / "s"], seq_len=64, weights=[0.75, 0.25])
    loader.next_batch(32)
    assert loader.counts == [24, 8]
    cfg = tiny_config(None, mixture=((str(tiny_corpus), 0.75), (str(tmp_path / "s"), 0.25)),
                      n_tokens=64 * 8 * 2, eval_every=None, checkpoint_every=None)
    result = run(cfg, tmp_path / "mixed")
    assert result.status == "done"


def test_bad_synth_requests_exit_2_and_write_nothing(trained, tmp_path, capsys):
    line = exit2(["data", "synth", str(trained), "--tokens", "0", "--out", str(tmp_path / "x")], capsys)
    assert "--tokens" in line
    assert not (tmp_path / "x").exists()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("keep me")
    line = exit2(["data", "synth", str(trained), "--tokens", "1000", "--out", str(tmp_path / "busy")], capsys)
    assert "not a prepared corpus" in line
    assert (tmp_path / "busy" / "notes.txt").read_text() == "keep me"
    empty = tmp_path / "norun"
    empty.mkdir()
    exit2(["data", "synth", str(empty), "--tokens", "1000", "--out", str(tmp_path / "y")], capsys)
    assert not (tmp_path / "y").exists()


def test_the_token_count_is_exact_when_one_token_is_left(monkeypatch):
    """A document that leaves one token before the target ends the corpus with an end-of-text-only document
    (it used to sample forever)."""
    from types import SimpleNamespace

    import scalinglab.model.generate as gen
    from scalinglab.data.synth import SynthConfig
    from scalinglab.study.synth import sample_documents

    row = SimpleNamespace(token_ids=tuple(range(1, 9)))  # 8 tokens + end-of-text = 9 of the 10 asked
    calls = []
    monkeypatch.setattr(gen, "generate", lambda *a, **k: calls.append(1) or [row])
    model, tok = SimpleNamespace(cfg=SimpleNamespace(seq_len=16)), SimpleNamespace(eot_id=0)
    docs = sample_documents(model, tok, SynthConfig(n_tokens=10, rows=1))
    assert sum(len(d) + 1 for d in docs) == 10 and docs[-1] == [] and len(calls) == 2
