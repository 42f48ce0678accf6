"""Mixture schedules (issue 14): weights by step, in config and fingerprint; bitwise resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from scalinglab.data.curriculum import check_schedule, parse_schedule, weights_at
from scalinglab.errors import ConfigError
from tests.conftest import REPO, exit2
from tests.train.conftest import tiny_config

SCHEDULE = "10:0.9,0.1;20:0.5,0.5;30:0.1,0.9"

DRIVER = f"""
import os, signal, sys
from scalinglab import train
from tests.train.conftest import tiny_config
a, b, run_dir, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = tiny_config(None, mixture=((a, 1.0), (b, 1.0)), mixture_schedule={SCHEDULE!r},
                  mixture_interp="linear", checkpoint_every=5, eval_every=None,
                  model={{"d_model": 32, "n_layer": 1, "n_head": 2}})

def progress(rec):
    if kill_at and rec["step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

train.run(cfg, run_dir, resume=os.path.isdir(os.path.join(run_dir, "checkpoints")), progress=progress)
"""


@pytest.fixture(scope="module")
def two_corpora(corpus, tmp_path_factory):
    from scalinglab.data.prepare import prepare
    from tests.data.conftest import write_texts

    root = tmp_path_factory.mktemp("curriculum")
    texts = {f"t{i}.txt": " ".join(f"line {i} {j} of the second domain." for j in range(300))
             for i in range(20)}
    other = root / "other"
    prepare([str(write_texts(root / "txt", texts))], other)
    return str(corpus), str(other)


def test_weights_by_step():
    stages = parse_schedule(SCHEDULE)
    assert weights_at(stages, "piecewise", 0) == pytest.approx((0.9, 0.1))
    assert weights_at(stages, "piecewise", 15) == pytest.approx((0.5, 0.5))
    assert weights_at(stages, "linear", 15) == pytest.approx((0.7, 0.3))  # halfway from stage 1 to 2
    assert weights_at(stages, "linear", 29) == pytest.approx((0.1 + 0.4 / 10, 0.9 - 0.4 / 10))


def test_schedule_in_config_and_fingerprint(two_corpora):
    a, b = two_corpora
    base = tiny_config(None, mixture=((a, 1.0), (b, 1.0)))
    cfg = base.replace(mixture_schedule=SCHEDULE)
    assert cfg.to_dict()["mixture_schedule"] == [[10, [0.9, 0.1]], [20, [0.5, 0.5]], [30, [0.1, 0.9]]]
    assert cfg.fingerprint() != base.fingerprint()
    assert "mixture_schedule" not in base.to_dict()  # older runs keep their fingerprint
    with pytest.raises(ConfigError, match="cover the run"):
        base.replace(mixture_schedule="10:0.9,0.1")
    with pytest.raises(ConfigError, match=">= 0"):
        check_schedule(parse_schedule("30:-1,2"), 2, 30, "piecewise")


def test_bad_schedule_exits_2(two_corpora, tmp_path, capsys):
    a, b = two_corpora
    out = tmp_path / "run"
    toml = tmp_path / "run.toml"
    toml.write_text(f'n_tokens = {64 * 8 * 30}\nbatch_size = 8\nmixture = [["{a}", 1.0], ["{b}", 1.0]]\n'
                    "[model]\nd_model = 64\nn_layer = 2\nn_head = 4\nseq_len = 64\n")
    for schedule, msg in (("10:0.5,0.5", "cover the run"), ("40:-0.5,1.5", ">= 0")):
        line = exit2(["train", "--config", str(toml), "--mixture-schedule", schedule, "--out", str(out),
                      "--no-progress"], capsys)
        assert msg in line and not out.exists()


def _losses(run_dir):
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_bitwise_resume_after_sigkill(two_corpora, tmp_path):
    a, b = two_corpora
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))

    def drive(run_dir, kill_at):
        return subprocess.run([sys.executable, "-c", DRIVER, a, b, str(run_dir), str(kill_at)], cwd=REPO,
                              env=env, capture_output=True, text=True, check=False)

    ref, killed = tmp_path / "ref", tmp_path / "killed"
    assert drive(ref, 0).returncode == 0
    proc = drive(killed, 17)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert drive(killed, 0).returncode == 0
    assert _losses(killed) == _losses(ref) and len(_losses(ref)) == 30  # bitwise: every step's float
