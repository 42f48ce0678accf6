"""ParallelConfig and the launcher: every bad layout of issue 12 is one line and exit 2 before any process
starts; layouts fill the world; the q/k/v split loads fused-qkv checkpoints; the planner's launch line."""

from __future__ import annotations

import subprocess

import pytest
import torch

from scalinglab.arch import GPTConfig
from scalinglab.cli.app import main
from scalinglab.errors import ConfigError
from scalinglab.parallel.config import ParallelConfig
from tests.train.conftest import tiny_config

MOE = GPTConfig(vocab_size=257, seq_len=64, d_model=64, n_layer=2, n_head=4, n_experts=4, top_k=2)


@pytest.mark.parametrize("kw,world,match", [
    ({"tp": 2}, 3, "world size 3 is not a multiple"),
    ({"tp": 2, "fsdp": 2}, 8, "!= the product of the degrees"),
    ({"pp": 2, "pp_schedule": "interleaved_1f1b", "virtual_stages": 2, "n_microbatches": 3}, 2,
     "multiple of pp=2"),
    ({"virtual_stages": 2}, 1, "needs pp_schedule='interleaved_1f1b'"),
    ({"sequence_parallel": True}, 1, "needs tensor parallelism"),
    ({"pp_schedule": "zb"}, 1, "pp_schedule='zb' is not allowed"),
    ({"tp": 0}, 1, "positive integer"),
])
def test_bad_layouts_are_refused_with_one_line(kw, world, match):
    with pytest.raises(ConfigError, match=match) as err:
        ParallelConfig.for_world(world, **kw)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("cfg_kw,world,match", [
    ({"tp": 3}, 3, "tp=3 does not divide n_head=4"),
    ({"tp": 4, "model": {"n_kv_head": 2}}, 4, "n_kv_head"),
    ({"tp": 2, "model": {"d_model": 64, "n_head": 2, "mlp_hidden": 101}}, 2, "d_mlp=101"),
    ({"pp": 4}, 4, "exceed the model's n_layer=2"),
    ({"parallel": "fsdp"}, 3, "batch_size=8 is not divisible by the 3 data-parallel ranks"),
    ({"parallel": "fsdp", "batch_size": 16, "micro_batch_size": 3}, 2, "micro_batch_size=3"),
    ({"tp": 2, "precision": "fp16"}, 2, "precision='fp16'"),
    ({"parallel": "fsdp", "precision": "fp16"}, 2, "precision='fp16'"),
])
def test_bad_layouts_against_the_model_and_batch(corpus, cfg_kw, world, match):
    with pytest.raises(ConfigError, match=match):
        tiny_config(corpus, **cfg_kw).layout(world)


def test_ep_must_divide_the_experts():
    with pytest.raises(ConfigError, match="ep=3 does not divide n_experts=4"):
        ParallelConfig(ep=3).check_model(MOE)
    with pytest.raises(ConfigError, match="mixture-of-experts"):
        ParallelConfig(ep=2).check_model(GPTConfig(vocab_size=257, seq_len=64, d_model=64, n_layer=2,
                                                   n_head=4))
    ParallelConfig(ep=2).check_model(MOE)


def test_layouts_fill_the_world_with_data_parallel_ranks(corpus):
    cfg = tiny_config(corpus, tp=2)
    assert cfg.layout(4) == ParallelConfig(tp=2, fsdp=2)  # under tp the data ranks shard (FSDP x TP)
    assert tiny_config(corpus).layout(2) == ParallelConfig(dp=2)
    assert tiny_config(corpus, parallel="fsdp").layout(2).mesh_dims == (("fsdp", 2),)
    assert ParallelConfig(tp=2, fsdp=2, pp=2).mesh_dims == (("pp", 2), ("fsdp", 2), ("tp", 2))
    assert ParallelConfig(tp=2, fsdp=2, ep=2).data_parallel_size == 4
    assert cfg.fingerprint() == tiny_config(corpus).fingerprint()  # a layout is not part of the trajectory


@pytest.mark.parametrize("args,match", [
    (["--nproc", "3", "--tp", "2"], "world size 3 is not a multiple"),
    (["--nproc", "2", "--tp", "2", "--precision", "fp16"], "fp16"),
    (["--nproc", "4", "--tp", "4"], "n_head"),
])
def test_the_launcher_refuses_before_starting_torchrun(corpus, tmp_path, capsys, monkeypatch, args, match):
    def no_start(*_a, **_k):
        raise AssertionError("torchrun was started")

    monkeypatch.setattr(subprocess, "run", no_start)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    shape = ["--d-model", "64", "--n-layer", "2", "--n-head", "2", "--seq-len", "64", "--tokens", "8k",
             "--data", str(corpus), "--out", str(tmp_path / "r")]
    with pytest.raises(SystemExit) as ex:
        main(["train", *shape, *args])
    err = capsys.readouterr().err.strip()
    assert ex.value.code == 2 and len(err.splitlines()) == 1 and match in err, err
    assert not (tmp_path / "r").exists()


def test_the_launcher_passes_every_flag_to_the_ranks(corpus, tmp_path, monkeypatch):
    seen = {}

    def fake_run(cmd, **_k):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    main(["train", "--d-model", "64", "--n-layer", "2", "--n-head", "4", "--seq-len", "64", "--tokens", "8k",
          "--data", str(corpus), "--out", str(tmp_path / "r"), "--nproc", "2", "--tp", "2",
          "--sequence-parallel", "--set", "keep_last=1", "--no-progress"])
    cmd = seen["cmd"]
    assert cmd[1:6] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert cmd[6:9] == ["-m", "scalinglab", "train"] and "--nproc" not in cmd
    wanted = (["--tp", "2"], ["--sequence-parallel"], ["--set", "keep_last=1"],
              ["--out", str(tmp_path / "r")])
    for part in wanted:
        assert any(cmd[i:i + len(part)] == part for i in range(len(cmd))), part


def test_fused_qkv_checkpoints_load_into_the_split_projections():
    from scalinglab.model import GPT

    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=64, seq_len=16, d_model=32, n_layer=1, n_head=4, n_kv_head=2, bias=True)
    model, other = GPT(cfg), GPT(cfg)
    old = {}
    for key, value in model.state_dict().items():  # the layout before the split: one fused qkv Linear
        if ".attn.q." in key:
            kind = key.rsplit(".", 1)[1]
            prefix = key.split(".attn.")[0] + ".attn."
            parts = [model.state_dict()[f"{prefix}{n}.{kind}"] for n in "qkv"]
            old[f"{prefix}qkv.{kind}"] = torch.cat(parts)
        elif ".attn.k." not in key and ".attn.v." not in key:
            old[key] = value
    other.load_state_dict(old, strict=True)
    idx = torch.randint(0, 64, (2, 16))
    assert torch.equal(other(idx).logits, model(idx).logits)


def test_the_planner_prints_a_runnable_command_or_the_reason():
    from scalinglab.plan import make_plan

    plan = make_plan(1e23, n_gpus=64)
    for lay in plan.layouts:
        launch = plan.launch(lay)
        if launch.runnable:
            assert f"--tp {lay.tp}" in launch.command if lay.tp > 1 else "--tp" not in launch.command
            assert launch.command.startswith("torchrun --nnodes 8 --nproc-per-node 8")
            if lay.zero == 2:
                assert "--no-reshard-after-forward" in launch.command
            if lay.recompute in ("selective", "full"):
                assert f"--recompute {lay.recompute}" in launch.command
            elif lay.recompute == "partial":
                assert f"--recompute selective --recompute-layers {lay.recompute_layers}" in launch.command
            else:
                assert "--recompute" not in launch.command
        else:
            assert launch.reason and (lay.zero == 1 or lay.pp > 1 or lay.ep > 1)
    d = plan.to_dict()
    assert {"runnable", "command", "reason"} <= set(d["layout"]["launch"])
