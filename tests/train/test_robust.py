"""Nothing lost, nothing silent (issue 11): bad shards, a failing final eval, moved folders, impossible
shapes, flags that cannot apply, crashes, file modes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from scalinglab.cli.app import main
from scalinglab.data.prepare import MANIFEST, sha256_file
from scalinglab.errors import CheckpointError, RunCrashedError
from scalinglab.train import checkpoint as ckpt
from scalinglab.train import run
from scalinglab.train.loop import Trainer
from scalinglab.train.rundir import read_metrics
from tests.train.conftest import tiny_config

SHAPE = ["--d-model", "64", "--n-layer", "2", "--n-head", "4", "--seq-len", "64", "--batch-size", "8",
         "--device", "cpu", "--no-progress"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``scalinglab ARGS`` run in this process."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as ex:
        code = ex.code if isinstance(ex.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def flip_byte(path: Path, offset: int = 10) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.fixture
def corpus_copy(corpus, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(corpus, out)
    return out


def crash_at(monkeypatch, step: int) -> None:
    """Make the loop raise a plain (unexpected) exception after ``step`` steps."""
    original = Trainer.step_async  # what the loop calls each step

    def step_async(self):
        if self.step == step:
            raise RuntimeError("injected failure inside the loop")
        return original(self)

    monkeypatch.setattr(Trainer, "step_async", step_async)


def test_a_flipped_byte_in_a_val_shard_is_refused_at_start(capsys, corpus_copy, tmp_path):
    flip_byte(corpus_copy / "val_000000.bin")
    code, _, err = cli(capsys, "train", *SHAPE, "--tokens", "5k", "--data", str(corpus_copy),
                       "--out", str(tmp_path / "run"))
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "val_000000.bin" in err and "sha256" in err
    assert not (tmp_path / "run").exists()


def test_a_failing_final_eval_leaves_a_checkpoint_that_resume_finishes(corpus, tmp_path, monkeypatch):
    cfg = tiny_config(corpus, checkpoint_every=None)
    original = Trainer.evaluate

    def evaluate(self):
        if self.step == cfg.n_steps:
            raise IndexError("injected failure in the final eval")
        return original(self)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    with pytest.raises(RunCrashedError, match="IndexError"):
        run(cfg, tmp_path / "r")
    final = json.loads((tmp_path / "r" / "final.json").read_text())
    assert final["status"] == "failed" and "injected" in final["error"]
    assert [p.name for p in ckpt.list_checkpoints(tmp_path / "r")] == [f"step_{cfg.n_steps:07d}"]
    monkeypatch.setattr(Trainer, "evaluate", original)
    result = run(cfg, tmp_path / "r", resume=True)
    assert result.status == "done" and result.val_loss is not None
    rows = read_metrics(tmp_path / "r")
    finals = [r for r in rows if "loss" not in r]
    assert len(finals) == 1  # one final-eval row, not two
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, cfg.n_steps + 1))


def test_an_exception_inside_the_loop_is_exit_3_with_a_record(capsys, corpus, tmp_path, monkeypatch):
    crash_at(monkeypatch, 3)
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", *SHAPE, "--tokens", "5k", "--data", str(corpus), "--out", str(out))
    assert code == 3
    assert len(err.strip().splitlines()) == 1 and "injected failure" in err and "train.log" in err
    assert "Traceback" not in err
    logged = (out / "train.log").read_text()
    assert "Traceback" in logged and "injected failure" in logged
    assert json.loads((out / "final.json").read_text())["status"] == "failed"


def test_a_moved_run_and_corpus_resume_and_a_changed_shard_is_refused(capsys, corpus_copy, tmp_path,
                                                                        monkeypatch):
    first = tmp_path / "a" / "run"
    crash_at(monkeypatch, 6)
    code, _, _ = cli(capsys, "train", *SHAPE, "--tokens", str(64 * 8 * 10), "--checkpoint-every", "5",
                     "--data", str(corpus_copy), "--out", str(first))
    assert code == 3
    monkeypatch.undo()
    moved_run, moved_corpus = tmp_path / "b" / "run", tmp_path / "elsewhere" / "corpus"
    shutil.copytree(first, moved_run)
    shutil.move(str(corpus_copy), moved_corpus)
    shutil.rmtree(tmp_path / "a")
    changed = tmp_path / "changed"  # a different corpus: one shard's tokens (and its manifest hash) changed
    shutil.copytree(moved_corpus, changed)
    flip_byte(changed / "train_000000.bin")
    manifest = json.loads((changed / MANIFEST).read_text())
    manifest["splits"]["train"]["shards"][0]["sha256"] = sha256_file(changed / "train_000000.bin")
    (changed / MANIFEST).write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "train", "--resume", str(moved_run), "--data", str(changed), "--no-progress")
    assert code == 2 and "train_000000.bin" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli(capsys, "train", "--resume", str(moved_run), "--data", str(moved_corpus),
                         "--no-progress", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "done" and json.loads(out)["step"] == 10
    saved = json.loads((moved_run / "config.json").read_text())
    assert saved["data_dir"] == str(moved_corpus)  # follows the corpus: a later --resume needs no --data


def test_a_run_whose_corpus_lies_inside_it_stores_it_relative(corpus, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copytree(corpus, folder / "data")
    run(tiny_config(folder / "data", n_tokens=64 * 8 * 2), folder)
    assert json.loads((folder / "config.json").read_text())["data_dir"] == "data"
    moved = tmp_path / "moved"
    shutil.move(str(folder), moved)
    from scalinglab.train.rundir import saved_config

    assert saved_config(moved).data_dir == str((moved / "data").resolve())


def test_an_impossible_sequence_length_is_refused_before_anything_is_written(capsys, tmp_path):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "train", "--d-model", "64", "--n-layer", "2", "--seq-len", "100000",
                       "--attention", "local", "--window", "8", "--tokens", "4M", "--device", "cpu",
                       "--out", str(out))
    assert code == 2 and "seq_len=100000" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_flags_that_cannot_apply_are_errors(capsys, corpus, tmp_path):
    code, _, err = cli(capsys, "train", *SHAPE, "--tokens", "5k", "--window", "8", "--data", str(corpus),
                       "--out", str(tmp_path / "w"))
    assert code == 2 and "--window" in err and "--attention" in err
    assert not (tmp_path / "w").exists()
    run(tiny_config(corpus, n_tokens=64 * 8 * 2), tmp_path / "r")
    code, _, err = cli(capsys, "train", "--resume", str(tmp_path / "r"), "--depth", "3")
    assert code == 2 and "--depth" in err and "n_layer=2" in err and "d_model=64" in err


def test_a_file_as_out_and_a_corrupt_final_json_are_bad_input(capsys, corpus, tmp_path):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, "train", *SHAPE, "--tokens", "5k", "--data", str(corpus),
                       "--out", str(tmp_path / "file"))
    assert code == 2 and "is a file" in err
    run(tiny_config(corpus, n_tokens=64 * 8 * 2), tmp_path / "r")
    (tmp_path / "r" / "final.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="final.json is corrupted"):
        run(tiny_config(corpus, n_tokens=64 * 8 * 2), tmp_path / "r", resume=True)


def test_resume_reports_missing_metric_steps(corpus, tmp_path, monkeypatch, caplog):
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 12, checkpoint_every=10)
    crash_at(monkeypatch, 11)
    with pytest.raises(RunCrashedError):
        run(cfg, tmp_path / "r")
    monkeypatch.undo()
    path = tmp_path / "r" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:4]) + "\n" + lines[4][:10])  # a truncated file: steps 5.. are gone
    with caplog.at_level("WARNING"):
        run(cfg, tmp_path / "r", resume=True)
    assert "missing 6 logged step(s)" in caplog.text and "5-10" in caplog.text
    steps = [r["step"] for r in read_metrics(tmp_path / "r") if "loss" in r]
    assert steps == [1, 2, 3, 4, 11, 12] and len(steps) == len(set(steps))


def test_run_files_are_group_readable_under_umask_022(corpus, tmp_path):
    old = os.umask(0o022)
    try:
        run(tiny_config(corpus, n_tokens=64 * 8 * 2), tmp_path / "r")
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"config.json", "final.json", "metrics.jsonl", "corpus.json", "meta.json"} <= names
    for p in files:
        assert p.stat().st_mode & 0o044 == 0o044, (p, oct(p.stat().st_mode))


def test_the_default_eval_is_sized_from_the_run_and_stated(corpus, tmp_path):
    cfg = tiny_config(corpus, n_tokens=64 * 8 * 2, eval_tokens=None)
    assert cfg.val_tokens == 8192  # the floor: 2% of 1024 tokens is below it
    n = 600_000 - 600_000 % 512  # a 600k-token run: 2% (the fixed 65,536 was 11%)
    assert tiny_config(corpus, n_tokens=n, eval_tokens=None).val_tokens == int(0.02 * n)
    result = run(cfg, tmp_path / "r")
    assert result.final["eval_tokens"] <= 8192 and result.final["eval_tokens"] % 64 == 0
