"""Checkpoints: every piece of state needed for a bitwise-exact resume, written atomically, never pickled.

A checkpoint is a folder ``checkpoints/step_0000020/`` holding

* ``state.safetensors``: model parameters/buffers (``model.*``), optimizer tensors (``optim.<i>.<name>``),
  the torch CPU and CUDA RNG states (``rng.*``);
* ``meta.json``: step, config fingerprint, optimizer hyper-parameters, GradScaler, Python and NumPy RNG,
  data-loader position, divergence-guard history, counters, and the sha256 of ``state.safetensors``.

Under a sharding strategy that checkpoints its shards (tensor parallel), ``state.safetensors`` holds only the
RNG states and the model + optimizer state is a ``torch.distributed.checkpoint`` (DCP) folder ``sharded/``
that every rank writes its shards into; DCP loads it into any other layout (one process included), re-sharding
on the way (``meta.json`` says ``"sharded": "sharded"``).

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

STATE, META, SHARDED = "state.safetensors", "meta.json", "sharded"
FORMAT = "scalinglab-checkpoint/1"
_STEP_DIR = re.compile(r"^step_(\d{7,})$")


@dataclass
class Snapshot:
    """Checkpoint contents held in (CPU) memory until written."""

    step: int
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    # DCP state {"model": ..., "optim": ...} of this rank's shards (when captured), or the folder it was
    # written to (when read); None: the full state is in ``tensors``
    sharded: dict[str, Any] | str | None = None


def capture(step: int, model: torch.nn.Module | dict, optimizer: torch.optim.Optimizer | dict,
            meta: dict[str, Any], sharded: dict[str, Any] | None = None) -> Snapshot:
    """Copy the model, optimizer and RNG state to CPU now (writing can happen later).

    ``model``/``optimizer`` may also be their (full, gathered) state dicts, as FSDP hands them over; with
    ``sharded`` (a DCP state dict already copied) they are empty.
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
    if sharded is not None:
        meta["sharded"] = SHARDED
    return Snapshot(step, tensors, meta, sharded)


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


def restore(snapshot: Snapshot, model: torch.nn.Module, optimizer: torch.optim.Optimizer, load=None,
            load_sharded=None) -> None:
    """Load model, optimizer and every RNG from ``snapshot`` (the loop restores the rest from ``meta``).

    ``load(model_state, optimizer_state)`` replaces the plain ``load_state_dict`` calls (FSDP shards them);
    ``load_sharded(path)`` loads a DCP checkpoint's folder.
    """
    try:
        if isinstance(snapshot.sharded, str):
            if load_sharded is None:
                raise CheckpointError(f"checkpoint step {snapshot.step} is sharded (DCP); load it through a "
                                      "Strategy")
            load_sharded(snapshot.sharded)
        elif load is not None:
            load(model_state(snapshot), optimizer_state(snapshot))
        else:
            model.load_state_dict(model_state(snapshot), strict=True)
            optimizer.load_state_dict(optimizer_state(snapshot))
    except (RuntimeError, KeyError, ValueError, IndexError) as err:
        raise CheckpointError(f"checkpoint step {snapshot.step} does not fit this model/optimizer "
                              f"({str(err).splitlines()[0]}); it belongs to a different "
                              "configuration") from err
    restore_rng(snapshot)


def migrate_fused_qkv(snapshot: Snapshot, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Rewrite, in place, a checkpoint saved when attention had one fused ``qkv`` Linear for today's q/k/v.

    The model keys are split by the attention module's load hook; here the optimizer state, which is keyed by
    parameter index: the old index order is today's with each layer's q, k, v collapsed into one ``qkv``, and
    each fused AdamW moment is split on dim 0 like the weight it belongs to.
    """
    if not any(k.endswith(".attn.qkv.weight") for k in snapshot.tensors):
        return
    from scalinglab.model.attention import split_fused_qkv

    names = {id(p): n for n, p in model.named_parameters()}
    new = [names[id(p)] for g in optimizer.param_groups for p in g["params"]]
    old = [n.replace(".attn.q.", ".attn.qkv.") for n in new if ".attn.k." not in n and ".attn.v." not in n]
    index = {n: i for i, n in enumerate(new)}
    state, meta = snapshot.tensors, snapshot.meta
    moved: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(old):
        targets = [name.replace(".qkv.", f".{x}.") for x in "qkv"] if ".attn.qkv." in name else [name]
        sizes = model.get_submodule(name.rsplit(".", 2)[0]) if len(targets) == 3 else None
        for key in [k for k in state if k.startswith(f"optim.{i}.")]:
            value, field = state[key], key.split(".", 2)[2]
            parts = ([value] * 3 if value.dim() == 0 else
                     split_fused_qkv(value, sizes.q.out_features, sizes.k.out_features)) if sizes else [value]
            for target, part in zip(targets, parts, strict=True):
                moved[f"optim.{index[target]}.{field}"] = part
        for target in targets:
            scalars[str(index[target])] = meta["optim_scalars"].get(str(i), {})
    snapshot.tensors = {k: v for k, v in state.items() if not k.startswith("optim.")} | moved
    meta["optim_scalars"] = scalars
    meta["optim_indices"] = list(range(len(new))) if meta["optim_indices"] else []
    sizes_by_group = [len(g["params"]) for g in optimizer.param_groups]
    starts = [sum(sizes_by_group[:j]) for j in range(len(sizes_by_group))]
    meta["optim_groups"] = [dict(g, params=list(range(s, s + n)))
                            for g, s, n in zip(meta["optim_groups"], starts, sizes_by_group, strict=True)]


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


def write(snapshot: Snapshot, ckpt_root: Path, *, is_main: bool = True, barrier=None) -> Path:
    """Write ``snapshot`` atomically as ``ckpt_root/step_XXXXXXX`` and return its path.

    A sharded snapshot is collective: every rank calls it (``barrier`` synchronises them), DCP writes each
    rank's shards into the temporary folder, and the main rank alone writes the rest and renames.
    """
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step_{snapshot.step:07d}"
    if snapshot.sharded is not None:
        return _write_sharded(snapshot, ckpt_root, final, is_main, barrier)
    tmp = ckpt_root / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return _finish(snapshot, tmp, final)


def _write_sharded(snapshot: Snapshot, ckpt_root: Path, final: Path, is_main: bool, barrier) -> Path:
    import torch.distributed.checkpoint as dcp

    tmp = ckpt_root / f".tmp-{final.name}-sharded"  # one name all ranks agree on (pids differ)
    if is_main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    if barrier is not None:
        barrier()
    dcp.save(snapshot.sharded, checkpoint_id=str(tmp / SHARDED))  # collective; each rank its shards
    if is_main:
        _finish(snapshot, tmp, final)
    if barrier is not None:
        barrier()  # nobody goes on (and prunes, or reads) before the rename
    return final


def _finish(snapshot: Snapshot, tmp: Path, final: Path) -> Path:
    ckpt_root = final.parent
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
    sharded = None
    if meta.get("sharded"):
        sharded = str(path / meta["sharded"])
        if not (Path(sharded) / ".metadata").is_file():
            raise CheckpointError(f"{sharded} has no DCP .metadata (an incomplete sharded checkpoint); "
                                  f"delete {path} and resume from the previous checkpoint")
    return Snapshot(int(meta["step"]), load_file(str(path / STATE)), meta, sharded)


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
