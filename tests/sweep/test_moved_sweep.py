"""A sweep folder copied elsewhere resumes its runs on its own copy of the corpus; a changed shard is refused
naming it; a 0-byte registry is an error, not a fresh sweep (issue 11)."""

from __future__ import annotations

import json
import shutil

from scalinglab.cli.app import main
from scalinglab.data.prepare import MANIFEST, sha256_file
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry
from scalinglab.sweep.worker import execute_run
from scalinglab.train.loop import Trainer
from tests.train.conftest import tiny_config


def _sweep(folder, corpus) -> None:
    shutil.copytree(corpus, folder / "data")
    cfg = tiny_config("data-placeholder", n_tokens=64 * 8 * 10, checkpoint_every=5).to_dict()
    cfg["data_dir"] = "data"  # a corpus inside the sweep is recorded relative to it
    with Registry.open(folder / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("s", {"test": True})
        reg.add_run("s", "r1", cfg)


def _requeue(folder) -> None:
    with Registry.open(folder / REGISTRY_FILENAME, create=False) as reg:
        reg.requeue_failed()


def test_a_copied_sweep_resumes_and_a_changed_shard_is_refused(tiny_corpus, tmp_path, monkeypatch):
    first = tmp_path / "a"
    _sweep(first, tiny_corpus)
    original = Trainer.step_async  # what the loop calls each step

    def crash(self):
        if self.step == 6:
            raise RuntimeError("node lost")
        return original(self)

    monkeypatch.setattr(Trainer, "step_async", crash)
    assert execute_run(first, "r1") == "failed"
    monkeypatch.undo()
    copy, changed = tmp_path / "b", tmp_path / "c"
    shutil.copytree(first, copy)
    shutil.copytree(first, changed)
    shutil.rmtree(first)  # the original folder (and its corpus) is gone
    shard = changed / "data" / "train_000000.bin"
    data = bytearray(shard.read_bytes())
    data[5] ^= 0xFF
    shard.write_bytes(bytes(data))
    manifest = json.loads((changed / "data" / MANIFEST).read_text())
    manifest["splits"]["train"]["shards"][0]["sha256"] = sha256_file(shard)
    (changed / "data" / MANIFEST).write_text(json.dumps(manifest))
    _requeue(changed)
    assert execute_run(changed, "r1") == "failed"
    with Registry.open(changed / REGISTRY_FILENAME, create=False) as reg:
        assert "train_000000.bin" in reg.get("r1").error
    _requeue(copy)
    assert execute_run(copy, "r1") == "done"
    with Registry.open(copy / REGISTRY_FILENAME, create=False) as reg:
        assert reg.summary("r1")["step"] == 10


def test_a_zero_byte_registry_is_refused(capsys, tmp_path):
    (tmp_path / REGISTRY_FILENAME).write_bytes(b"")
    try:
        main(["sweep", "status", str(tmp_path), "--json"])
        code = 0
    except SystemExit as ex:
        code = ex.code
    err = capsys.readouterr().err
    assert code == 2 and "empty file, not a registry; delete it or pass a new folder" in err
    assert (tmp_path / REGISTRY_FILENAME).stat().st_size == 0  # left as it was
