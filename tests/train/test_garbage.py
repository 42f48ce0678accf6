"""Property tests: garbage in any config field or manifest fails with one of our errors, never a traceback."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalinglab.errors import ScalingLabError
from scalinglab.train.config import TrainConfig

FIELDS = ["n_tokens", "batch_size", "micro_batch_size", "lr", "min_lr_ratio", "weight_decay", "beta1",
          "grad_clip",
          "schedule", "warmup_steps", "cooldown_frac", "precision", "compile", "device", "seed", "eval_every",
          "checkpoint_every", "keep_last", "spike_factor", "drift_factor", "parallel", "mixture", "data_dir",
          "model"]
MODEL_FIELDS = ["depth", "d_model", "n_layer", "n_head", "seq_len", "vocab_size", "attention", "n_experts",
                "top_k",
                "norm", "pos", "dropout", "mlp_ratio"]
garbage = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
                    st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3),
                    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top=st.dictionaries(st.sampled_from(FIELDS), garbage, max_size=3),
       model=st.dictionaries(st.sampled_from(MODEL_FIELDS), garbage, max_size=3))
def test_garbage_config_raises_only_our_errors(top, model):
    d = {"model": {"depth": 1, "seq_len": 32} | model, "n_tokens": 10**6} | top
    try:
        cfg = TrainConfig.from_dict(d)
    except ScalingLabError as err:
        assert str(err) and "\n" not in str(err)
        return
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@settings(max_examples=60, deadline=None)
@given(payload=st.one_of(st.binary(max_size=64), st.text(max_size=64).map(str.encode),
                         st.dictionaries(st.text(max_size=6), garbage, max_size=4).map(
                             lambda d: json.dumps(d).encode())))
def test_garbage_manifest_is_a_data_error(tmp_path_factory, payload):
    from scalinglab.data.loader import BatchLoader

    folder = tmp_path_factory.mktemp("m")
    (folder / "manifest.json").write_bytes(payload)
    try:
        BatchLoader([folder], seq_len=8)
    except ScalingLabError as err:
        assert str(err)
