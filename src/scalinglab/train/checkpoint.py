"""Checkpoints: every piece of state needed for a bitwise-exact resume, written atomically, never pickled.

A checkpoint is a folder ``checkpoints/step_0000020/`` holding

* ``state.safetensors``: model parameters/buffers (``model.*``), optimizer tensors (``optim.<i>.<name>``),
  the torch CPU and CUDA RNG states (``rng.*``);
* ``meta.json``: step, config fingerprint, optimizer hyper-parameters, GradScaler, Python and NumPy RNG,
  data-loader position, divergence-guard history, counters, and the sha256 of ``state.safetensors``.

It is written into a temporary folder, every file fsynced, then renamed into place (a rename is atomic on
POSIX), so a crash leaves either the previous checkpoints or the complete new one. Loading verifies the hash
first; nothing is ever unpickled (safetensors + JSON only).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from scalinglab.data.prepare import sha256_file
from scalinglab.errors import CheckpointError
from scalinglab.fileio import process_umask

log = logging.getLogger(__name__)

STATE, META = "state.safetensors", "meta.json"
FORMAT = "scalinglab-checkpoint/1"
_STEP_DIR = re.compile(r"^step_(\d{7,})$")


@dataclass
class Snapshot:
    """Checkpoint contents held in (CPU) memory until written."""

    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]


def capture(step: int, model: torch.nn.Module | dict, optimizer: torch.optim.Optimizer | dict,
            meta: dict[str, Any]) -> Snapshot:
    """Copy the model, optimizer and RNG state to CPU now (writing can happen later).

    ``model``/``optimizer`` may also be their (full, gathered) state dicts, as FSDP hands them over.
    """
    model_sd = model if isinstance(model, dict) else model.state_dict()
    tensors = {f"model.{k}": v.detach().to("cpu", copy=True).contiguous() for k, v in model_sd.items()}
    opt = optimizer if isinstance(optimizer, dict) else optimizer.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"optim.{idx}.{name}"] = value.detach().to("cpu", copy=True).contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    np_state = np.random.get_state()
    meta = dict(meta, format=FORMAT, step=step, optim_groups=opt["param_groups"], optim_scalars=scalars,
                optim_indices=sorted(int(i) for i in opt["state"]),
                rng_python=_py_rng_to_json(random.getstate()),
                rng_numpy=[np_state[0], np_state[1].tolist(), *map(_plain, np_state[2:])])
    return Snapshot(step, tensors, meta)


def model_state(snapshot: Snapshot) -> dict[str, torch.Tensor]:
    """The model's full state dict held in ``snapshot``."""
    return {k[len("model."):]: v for k, v in snapshot.tensors.items() if k.startswith("model.")}


def optimizer_state(snapshot: Snapshot) -> dict[str, Any]:
    """The optimizer's state dict (keyed by parameter index, as ``optimizer.state_dict()``) held in
    ``snapshot``."""
    t, meta = snapshot.tensors, snapshot.meta
    state: dict[int,
                dict[str,
                     Any]] = {i: dict(meta["optim_scalars"].get(str(i), {})) for i in meta["optim_indices"]}
    for key, value in t.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state[int(idx)][name] = value
    groups = [dict(g, betas=tuple(g["betas"])) if "betas" in g else g for g in meta["optim_groups"]]
    return {"state": state, "param_groups": groups}


def restore(snapshot: Snapshot, model: torch.nn.Module, optimizer: torch.optim.Optimizer, load=None) -> None:
    """Load model, optimizer and every RNG from ``snapshot`` (the loop restores the rest from ``meta``).

    ``load(model_state, optimizer_state)`` replaces the plain ``load_state_dict`` calls (FSDP shards them).
    """
    try:
        if load is not None:
            load(model_state(snapshot), optimizer_state(snapshot))
        else:
            model.load_state_dict(model_state(snapshot), strict=True)
            optimizer.load_state_dict(optimizer_state(snapshot))
    except (RuntimeError, KeyError, ValueError, IndexError) as err:
        raise CheckpointError(f"checkpoint step {snapshot.step} does not fit this model/optimizer "
                              f"({str(err).splitlines()[0]}); it belongs to a different "
                              "configuration") from err
    restore_rng(snapshot)


def restore_rng(snapshot: Snapshot) -> None:
    """Set the torch (CPU, CUDA), Python and NumPy RNGs to their state in ``snapshot``."""
    t, meta = snapshot.tensors, snapshot.meta
    torch.set_rng_state(t["rng.torch"])
    cuda = sorted((k for k in t if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([t[k] for k in cuda])
    random.setstate(_py_rng_from_json(meta["rng_python"]))
    name, keys, *rest = meta["rng_numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))


def write(snapshot: Snapshot, ckpt_root: Path) -> Path:
    """Write ``snapshot`` atomically as ``ckpt_root/step_XXXXXXX`` and return its path."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{snapshot.step:07d}"
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file(snapshot.tensors, str(tmp / STATE))
    os.chmod(tmp / STATE, 0o666 & ~process_umask())  # safetensors writes 0600; a group must read a run
    _fsync(tmp / STATE)
    meta = dict(snapshot.meta, sha256=sha256_file(tmp / STATE))
    with open(tmp / META, "w", encoding="utf-8") as f:
        json.dump(meta, f)
        f.flush()
        os.fsync(f.fileno())
    if final.exists():  # a re-run of the same step after a crash: replace it
        shutil.rmtree(final)
    os.rename(tmp, final)
    _fsync_dir(ckpt_root)
    return final


def read(path: str | Path) -> Snapshot:
    """Load and verify a checkpoint folder (CheckpointError on anything missing, truncated or altered)."""
    path = Path(path)
    if not (path / META).is_file() or not (path / STATE).is_file():
        raise CheckpointError(f"{path} is not a complete checkpoint (needs {META} and {STATE})")
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} has format {meta.get('format')!r}, expected {FORMAT}")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as err:
        raise CheckpointError(f"{path / META} is truncated or corrupted; delete {path} and resume "
                              "from the previous checkpoint") from err
    if sha256_file(path / STATE) != meta.get("sha256"):
        raise CheckpointError(f"{path / STATE} does not match its recorded sha256 (truncated or corrupted); "
                              f"delete {path} and resume from the previous checkpoint")
    return Snapshot(int(meta["step"]), load_file(str(path / STATE)), meta)


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete-looking checkpoint folders of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def resolve(path: str | Path) -> Path:
    """A checkpoint folder, or a run folder (its latest checkpoint)."""
    path = Path(path)
    if (path / META).exists():
        return path
    found = list_checkpoints(path)
    if not found:
        raise CheckpointError(f"{path} is neither a checkpoint nor a run folder with checkpoints")
    return found[-1]


def prune(ckpt_root: Path, keep_last: int | None, protect: tuple[int, ...] = ()) -> None:
    """Delete all but the newest ``keep_last`` checkpoints (None: keep all), never the steps in ``protect``;
    also stale temp folders of dead writers."""
    prunable = [p for p in list_checkpoints(ckpt_root.parent) if int(p.name.split("_")[1]) not in protect]
    for p in prunable[:-keep_last] if keep_last is not None else []:
        shutil.rmtree(p, ignore_errors=True)
    for p in ckpt_root.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _py_rng_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_rng_from_json(state: list) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)
