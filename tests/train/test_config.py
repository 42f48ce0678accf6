"""TrainConfig: validation, "did you mean", TOML with overrides, round trip; schedules."""

from __future__ import annotations

import itertools
import math

import pytest

from scalinglab.errors import ConfigError
from scalinglab.train.config import TrainConfig
from scalinglab.train.schedules import cooldown_start, lr_multiplier


def test_unknown_keys_suggest_the_right_name():
    with pytest.raises(ConfigError, match="did you mean 'warmup_steps'"):
        TrainConfig.from_dict({"model": {"depth": 2}, "n_tokens": 10**6, "warmup_step": 5})
    with pytest.raises(ConfigError, match="did you mean 'lr'"):
        TrainConfig.from_dict({"model": {"depth": 2}, "n_tokens": 10**6, "learning_rate": 1e-3})
    with pytest.raises(ConfigError, match="did you mean 'lr'"):  # a misspelt synonym still finds its key
        TrainConfig.from_dict({"model": {"depth": 2}, "n_tokens": 10**6, "learnig_rate": 1e-3})
    with pytest.raises(ConfigError, match="did you mean 'n_layer'"):
        TrainConfig.from_dict({"model": {"d_model": 64, "n_layers": 2, "n_head": 1}, "n_tokens": 10**6})


@pytest.mark.parametrize("bad", [{"n_tokens": 0}, {"batch_size": -1}, {"lr": 0.0}, {"lr": math.inf},
                                 {"micro_batch_size": 3}, {"schedule": "step"}, {"precision": "fp8"},
                                 {"n_tokens": 100}, {"eval_every": 0}, {"keep_last": 0},
                                 {"cooldown_frac": 1.5}])
def test_bad_values_are_config_errors_naming_the_field(bad):
    d = {"model": {"depth": 2, "seq_len": 64}, "n_tokens": 10**6, "batch_size": 8} | bad
    with pytest.raises(ConfigError, match=next(iter(bad))):
        TrainConfig.from_dict(d)


def test_toml_with_cli_overrides_and_round_trip(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('n_tokens = "2M"\nlr = 1e-3\nschedule = "wsd"\n[model]\ndepth = 2\nseq_len = 128\n'
                    '[model.attention]\nkind = "bigbird"\nwindow = 32\n')
    cfg = TrainConfig.from_toml(path, {"lr": 2e-3, "model.depth": 3})
    assert cfg.n_tokens == 2_000_000 and cfg.lr == 2e-3 and cfg.schedule == "wsd"
    assert cfg.model.n_layer == 3 and cfg.model.d_model == 192 and cfg.model.vocab_size == 257
    assert cfg.model.attention.kind == "bigbird" and cfg.model.attention.window == 32
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.replace(device="cpu").fingerprint() == cfg.fingerprint()  # runtime field
    assert cfg.replace(lr=1e-2).fingerprint() != cfg.fingerprint()
    with pytest.raises(ConfigError, match="not valid TOML"):
        (tmp_path / "bad.toml").write_text("lr = = 3")
        TrainConfig.from_toml(tmp_path / "bad.toml")


def _lrs(schedule, n=100, warmup=10, **kw):
    return [lr_multiplier(s, n, schedule=schedule, warmup=warmup, min_lr_ratio=0.1, **kw) for s in range(n)]


def test_schedules_shapes():
    for name in ("cosine", "linear", "wsd", "constant"):
        lrs = _lrs(name)
        assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warmup
        assert all(0.1 - 1e-12 <= x <= 1.0 for x in lrs)
    assert _lrs("cosine")[-1] == pytest.approx(0.1) and _lrs("linear")[-1] == pytest.approx(0.1)
    assert _lrs("cosine")[55] == pytest.approx(0.55, abs=0.03)  # halfway down the cosine
    wsd = _lrs("wsd", cooldown_frac=0.2)
    start = cooldown_start(100, 10, 0.2)
    assert start == 80 and all(x == 1.0 for x in wsd[10:80])
    assert wsd[-1] == pytest.approx(0.1) and all(a > b for a, b in itertools.pairwise(wsd[80:]))
    sqrt = _lrs("wsd", cooldown_frac=0.2, cooldown_shape="1-sqrt")
    assert sqrt[85] < wsd[85] and sqrt[-1] == pytest.approx(0.1)  # 1-sqrt drops faster early
    assert set(_lrs("constant")[10:]) == {1.0}
