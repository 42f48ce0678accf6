"""Checkpoints saved when attention had one fused ``qkv`` Linear (before the q/k/v split that tensor
parallelism needs) still resume: model and AdamW state land on q, k, v exactly."""

from __future__ import annotations

import torch

from scalinglab.train import checkpoint as ckpt
from scalinglab.train.loop import Trainer
from tests.train.conftest import tiny_config


def _legacy(snap: ckpt.Snapshot, trainer: Trainer) -> ckpt.Snapshot:
    """``snap`` rewritten as the fused-qkv code saved it: q|k|v concatenated, optimizer indices collapsed."""
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    new = [names[id(p)] for g in trainer.optimizer.param_groups for p in g["params"]]
    old = [n.replace(".attn.q.", ".attn.qkv.") for n in new if ".attn.k." not in n and ".attn.v." not in n]
    index = {n: i for i, n in enumerate(new)}
    tensors = {}
    for key, value in snap.tensors.items():
        if key.startswith("optim."):
            continue
        if ".attn.q." in key:
            parts = [snap.tensors[key.replace(".attn.q.", f".attn.{x}.")] for x in "qkv"]
            tensors[key.replace(".attn.q.", ".attn.qkv.")] = torch.cat(parts)
        elif ".attn.k." not in key and ".attn.v." not in key:
            tensors[key] = value
    for i, name in enumerate(old):
        parts = [name.replace(".qkv.", f".{x}.") for x in "qkv"] if ".qkv." in name else [name]
        for field in ("exp_avg", "exp_avg_sq", "step"):
            values = [snap.tensors[f"optim.{index[p]}.{field}"] for p in parts]
            tensors[f"optim.{i}.{field}"] = values[0] if field == "step" else torch.cat(values)
    sizes = [sum(1 for p in g["params"] if ".attn.k." not in names[id(p)] and ".attn.v." not in names[id(p)])
             for g in trainer.optimizer.param_groups]
    groups = [dict(g, params=list(range(sum(sizes[:j]), sum(sizes[:j + 1]))))
              for j, g in enumerate(snap.meta["optim_groups"])]
    meta = dict(snap.meta, optim_groups=groups, optim_indices=list(range(len(old))),
                optim_scalars={str(i): {} for i in range(len(old))})
    return ckpt.Snapshot(snap.step, tensors, meta)


def test_a_fused_qkv_checkpoint_resumes_into_the_split_model(corpus, tmp_path):
    cfg = tiny_config(corpus, model={"n_kv_head": 2, "bias": True}, eval_every=None)
    trainer = Trainer(cfg, tmp_path / "a")
    for _ in range(2):
        trainer.train_step()
    path = ckpt.write(trainer.snapshot(), tmp_path / "a" / "checkpoints")
    legacy = _legacy(ckpt.read(path), trainer)
    assert any(k.endswith("attn.qkv.weight") for k in legacy.tensors)
    fresh, direct = Trainer(cfg, tmp_path / "b"), Trainer(cfg, tmp_path / "c")
    fresh.load(legacy)
    direct.load(ckpt.read(path))
    for a, b in zip(fresh.model.state_dict().values(), direct.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    sa, sb = fresh.optimizer.state_dict()["state"], direct.optimizer.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sb:
        for field in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(sa[i][field], sb[i][field]), (i, field)
    assert fresh.train_step()["loss"] == direct.train_step()["loss"]
