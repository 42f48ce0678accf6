"""On CUDA (NCCL): tp2 equals one GPU like on CPU, and a bf16 tp2 / fsdp2 x tp2 run trains. Skips cleanly
without two GPUs (none here; on a GPU box: ``pytest tests/parallel/test_tensor_parallel_cuda.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.parallel import tp_worker
from tests.parallel.test_tensor_parallel import GRAD_RTOL, REPO, WORKER, _normwise

pytestmark = pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA devices")


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"), TP_WORKER_DEVICE="cuda")


def test_tp2_on_two_gpus_matches_one_gpu(corpus, tmp_path):
    torch.backends.cuda.matmul.allow_tf32 = False  # the bound is fp32's
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(WORKER), str(tmp_path), str(corpus), "tp2", "tp2-sp"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name in ("tp2", "tp2-sp"):
        cfg = tp_worker.config(str(corpus), name, device="cuda").replace(tp=1, sequence_parallel=False)
        want, _ = tp_worker.trace(cfg, tmp_path / f"ref-{name}")
        got = load_file(str(tmp_path / f"{name}.safetensors"))
        for key in want:
            if key.startswith(("param.", "grad.")):
                assert _normwise(got[key], want[key].cpu()) <= GRAD_RTOL, (name, key)


@pytest.mark.parametrize("nproc,flags", [(2, ["--tp", "2"]), (4, ["--tp", "2", "--parallel", "fsdp"])])
def test_bf16_smoke(nproc, flags, corpus, tmp_path):
    if torch.cuda.device_count() < nproc:
        pytest.skip(f"needs {nproc} CUDA devices")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "scalinglab", "train", "--nproc", str(nproc), *flags, "--precision", "bf16",
           "--device", "cuda", "--d-model", "128", "--n-layer", "2", "--n-head", "4", "--seq-len", "64",
           "--batch-size", "8", "--tokens", str(64 * 8 * 10), "--data", str(corpus), "--no-progress",
           "--json", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout)["status"] == "done"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(len(r["memory_bytes_per_rank"]) == nproc for r in rows if "loss" in r)
