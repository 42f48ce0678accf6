"""The Strategy seam: the loop never asks which strategy it has; SingleProcess is the identity; DDP and FSDP
override only what their parallelism changes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from torch import nn

from scalinglab.errors import ConfigError
from scalinglab.parallel import DDP, FSDP, DistContext, SingleProcess, Strategy, make_strategy
from tests.train.conftest import tiny_config

LOOP = Path(__file__).resolve().parents[2] / "src" / "scalinglab" / "train" / "loop.py"


def _code(path: Path) -> str:
    """The file's code without comments and strings (which may name strategies to explain them)."""
    import io
    import tokenize

    toks = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return " ".join(t.string for t in toks if t.type not in (tokenize.COMMENT, tokenize.STRING))


def test_the_loop_never_tests_which_strategy_it_has():
    source = _code(LOOP)
    assert "strategy . forward_backward" in source  # it does call the strategy
    for pattern in (r"fsdp", r"\bddp\b", r"isinstance \(", r"strategy\s*==", r"strategy \. name",
                    r"dist \. strategy", r"SingleProcess|DDP|FSDP", r"type \( self \. strategy"):
        assert not re.search(pattern, source, re.IGNORECASE), pattern


def _ctx(rank, world):
    return DistContext(rank=rank, world_size=world, local_rank=0, strategy="ddp", mesh=None, owns_group=False)


def test_make_strategy_picks_by_name():
    cpu = torch.device("cpu")
    assert type(make_strategy(None, cpu)) is SingleProcess
    assert type(make_strategy(_ctx(0, 2), cpu)) is DDP
    fsdp = DistContext(rank=1, world_size=2, local_rank=0, strategy="fsdp", mesh=None, owns_group=False)
    assert type(make_strategy(fsdp, cpu)) is FSDP
    assert all(isinstance(make_strategy(d, cpu), Strategy) for d in (None, fsdp))


def test_local_rows_come_from_the_data_parallel_rank():
    cpu = torch.device("cpu")
    assert SingleProcess(cpu).local_rows(4) == range(4)
    rows = [DDP(cpu, _ctx(r, 3)).local_rows(4) for r in range(3)]
    assert rows == [range(4), range(4, 8), range(8, 12)]  # disjoint, covering the global micro-batch
    assert [DDP(cpu, _ctx(r, 3)).dp_size for r in range(3)] == [3, 3, 3]
    assert [DDP(cpu, _ctx(r, 3)).is_main for r in range(3)] == [True, False, False]


def test_fsdp_refuses_fp16_and_takes_the_unfused_optimizer(corpus):
    fsdp = FSDP(torch.device("cpu"), _ctx(0, 2))
    with pytest.raises(ConfigError, match="fp16"):
        fsdp.validate(tiny_config(corpus, precision="fp16"))
    fsdp.validate(tiny_config(corpus, precision="bf16"))
    SingleProcess(torch.device("cpu")).validate(tiny_config(corpus, precision="fp16"))
    model = nn.Linear(3, 2)
    groups = [{"params": list(model.parameters()), "weight_decay": 0.0}]
    assert not fsdp.make_optimizer(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8).defaults["fused"]
    single = SingleProcess(torch.device("cpu")).make_optimizer(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    assert single.defaults["fused"]


def test_single_process_forward_backward_is_the_mean_and_its_gradient():
    torch.manual_seed(0)
    model, x = nn.Linear(4, 1), torch.randn(8, 4)
    strategy = SingleProcess(torch.device("cpu"))
    assert strategy.wrap(model) is model

    def loss_fn(xb, yb):
        loss = ((model(xb) - yb) ** 2).mean()
        return loss, loss

    y = torch.randn(8, 1)
    loss = strategy.forward_backward([(x[:4], y[:4]), (x[4:], y[4:])], loss_fn)
    acc = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    big, _ = loss_fn(x, y)
    big.backward()
    torch.testing.assert_close(loss, big.detach())
    for g, want in zip(acc, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(g, want)
    assert not loss.requires_grad


def test_single_process_state_round_trips_and_clips():
    torch.manual_seed(0)
    strategy, model = SingleProcess(torch.device("cpu")), nn.Linear(3, 2)
    opt = strategy.make_optimizer([{"params": list(model.parameters())}], lr=0.1, betas=(0.9, 0.95), eps=1e-8)
    model(torch.ones(1, 3)).sum().backward()
    norm = strategy.clip_grad_norm(model.parameters(), 1e-3)
    clipped = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert norm > 1e-3 and clipped == pytest.approx(1e-3, rel=1e-4)
    opt.step()
    model_sd, optim_sd = strategy.full_state_dict(model, opt)
    other = nn.Linear(3, 2)
    other_opt = strategy.make_optimizer([{"params": list(other.parameters())}], lr=0.1, betas=(0.9, 0.95),
                                        eps=1e-8)
    strategy.load_full_state_dict(other, other_opt, model_sd, optim_sd)
    pairs = zip(model.state_dict().values(), other.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
