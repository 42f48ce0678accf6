"""`scalinglab plan`: tables, JSON, compare, gpus, and one-line exit-2 errors for bad input."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from scalinglab.cli.app import app, main

runner = CliRunner()


def _json(args):
    result = runner.invoke(app, args + ["--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_plan_compute_json():
    d = _json(["plan", "--compute", "1e23", "--gpu", "h100", "--law", "epoch2024"])
    assert d["allocation"]["compute_flops"] == 1e23
    assert d["gpu"]["key"] == "h100-sxm" and d["layout"]["memory"]["total"] <= 80e9
    assert d["costs"]["usd"] > 0 and d["hyperparams"]["learning_rate"] > 0


def test_plan_table():
    result = runner.invoke(app, ["plan", "--compute", "1e21 flops", "--gpu", "a100", "--gpus", "8"])
    assert result.exit_code == 0, result.output
    assert "parameters N" in result.stdout and "layout" in result.stdout


def test_plan_budget_kinds():
    usd = _json(["plan", "--budget-usd", "2e6", "--law", "epoch2024", "--gpus", "512"])
    assert usd["costs"]["usd"] == pytest.approx(2e6, rel=1e-3)
    dl = _json(["plan", "--hours", "720", "--gpus", "256", "--law", "epoch2024", "--unique-tokens", "5e11"])
    assert dl["allocation"]["mode"] == "data-constrained" and dl["n_gpus"] == 256
    assert dl["costs"]["wall_clock_hours"] == pytest.approx(720, rel=1e-2)


def test_plan_options():
    inf = _json(["plan", "--compute", "1e23", "--law", "epoch2024", "--inference-tokens", "2e13"])
    assert inf["allocation"]["mode"] == "inference-aware"
    cap = _json(
        [
            "plan",
            "--compute",
            "1e23",
            "--law",
            "epoch2024",
            "--max-params",
            "7B",
            "--seq-len",
            "4096",
            "--mfu",
            "0.3",
            "--price-per-gpu-hour",
            "2",
            "--grid-intensity",
            "0.1",
            "--gpus",
            "256",
        ]
    )
    assert cap["allocation"]["n_params"] == 7e9 and cap["shape"]["seq_len"] == 4096
    assert cap["costs"]["price_per_gpu_hour"] == 2 and cap["costs"]["grid_intensity_kg_per_kwh"] == 0.1
    fp8 = _json(["plan", "--compute", "1e23", "--dtype", "fp8", "--precision", "bf16", "--gpus", "256"])
    bf16 = _json(["plan", "--compute", "1e23", "--gpus", "256"])
    assert fp8["costs"]["gpu_hours"] < bf16["costs"]["gpu_hours"]
    assert fp8["layout"]["memory"]["model_states"] <= bf16["layout"]["memory"]["model_states"]
    tl = _json(["plan", "--target-loss", "2.1", "--law", "epoch2024"])
    assert tl["allocation"]["loss"] == pytest.approx(2.1, rel=1e-9)


def test_plan_compare():
    d = _json(["plan", "compare", "--compute", "1e23", "--law", "epoch2024", "--factor", "10"])
    opt, over = d["variants"]
    assert over["loss"] == pytest.approx(opt["loss"]) and over["n_params"] < opt["n_params"]
    assert over["breakeven_inference_tokens"] > 0
    assert over["usd"] / opt["usd"] == pytest.approx(over["train_flops"] / opt["train_flops"])
    result = runner.invoke(app, ["plan", "compare", "--compute", "1e23", "--law", "epoch2024"])
    assert result.exit_code == 0 and "10x" in result.stdout


def test_plan_gpus():
    d = _json(["plan", "gpus"])
    assert {"h100-sxm", "mi300x", "tpu-v5p"} <= {g["key"] for g in d}
    result = runner.invoke(app, ["plan", "gpus"])
    assert result.exit_code == 0 and "h100-sxm" in result.stdout


@pytest.mark.parametrize(
    "args,needle",
    [
        (["plan", "--compute", "1e23", "--gpu", "h900"], "known"),
        (["plan", "--compute", "0"], "positive"),
        (["plan", "--compute", "-1e21"], "positive"),
        (["plan", "--budget-usd", "-5"], "positive"),
        (["plan", "--compute", "1e21 parsecs"], "parsecs"),
        (["plan", "--compute", "1e21", "--budget-usd", "2e6"], "contradictory"),
        (["plan", "--hours", "720"], "GPU count"),
        (["plan", "--compute", "1e25", "--gpus", "8"], "no layout fits"),
        (["plan", "--compute", "1e23", "--unique-tokens", "lots"], "unique-tokens"),
        (["plan", "--compute", "1e23", "--gpus", "0"], "positive"),
        (["plan"], "exactly one"),
        (["plan", "--compute", "1e23", "--gpu", "a100", "--dtype", "fp8"], "fp8"),
        (["plan", "--compute", "1e23", "--precision", "fp4"], "precision"),
        (["plan", "--compute", "1e23", "--pue", "0.5"], "PUE"),
        (["plan", "compare", "--compute", "1e23", "--law", "chinchilla-approach1"], "allocations only"),
    ],
)
def test_bad_input_one_line_exit_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and "Traceback" not in err


@settings(max_examples=25, deadline=None)
@given(st.text(min_size=1, max_size=12).filter(lambda s: not s.startswith("-")))
def test_garbage_compute_never_tracebacks(text):
    try:
        main(["plan", "--compute", text, "--gpus", "8", "--json"])
    except SystemExit as exc:
        assert exc.code in (0, 2)


def test_plan_text_lists_assumptions_and_warnings_on_stderr():
    result = runner.invoke(app, ["plan", "--compute", "1e22", "--gpus", "4096", "--law", "epoch2024"])
    assert result.exit_code == 0, result.output
    for label in ("MFU", "asked", "PUE", "grid intensity", "$/GPU-hour", "power draw", "of TDP", "epoch2024"):
        assert label in result.stdout
    assert "warning: the layout runs" in result.stderr  # 4096 ranks cannot split DeepSeek's batch evenly
    d = _json(["plan", "--compute", "1e22", "--gpus", "4096", "--law", "epoch2024"])
    assert d["warnings"] and d["mfu"]["asked"] == 0.4 and d["inputs"]["law"] == "epoch2024"


def test_default_law_is_epoch2024():
    assert _json(["plan", "--compute", "1e21", "--gpus", "8"])["allocation"]["law"] == "epoch2024"


@pytest.mark.parametrize("zero,gb", [(0, 120.0), (1, 31.41), (2, 16.64), (3, 1.875)])
def test_plan_memory_zero_stages(zero, gb):
    d = _json(["plan", "memory", "--params", "7.5B", "--zero", str(zero), "--dp", "64"])
    assert d["total"] / 1e9 == pytest.approx(gb, rel=0.005) and d["activations_included"] is False


def test_plan_memory_text_and_shape():
    result = runner.invoke(app, ["plan", "memory", "--params", "7.5B", "--zero", "3", "--dp", "64"])
    assert result.exit_code == 0 and "model states only" in result.stdout and "--n-layer" in result.stdout
    d = _json(["plan", "memory", "--n-layer", "126", "--d-model", "16384", "--n-head", "128", "--n-kv-head",
               "8",
               "--seq-len", "8192", "--tp", "8", "--pp", "16", "--dp", "128", "--zero", "1", "--vocab-size",
               "128256"])
    assert d["kv_cache_per_sequence"] / 1e9 == pytest.approx(4.23, rel=0.005) and d["activations"] > 0


def test_compare_shows_lifetime_flops_and_the_layout():
    args = ["plan", "compare", "--compute", "1e22", "--law", "epoch2024", "--gpus", "256"]
    result = runner.invoke(app, args + ["--inference-tokens", "1e12"])
    assert result.exit_code == 0 and "lifetime FLOPs" in result.stdout and "MFU" in result.stdout
    d = _json(args)
    assert d["law_source"] and all(r["n_gpus"] == 256 and r["effective_mfu"] > 0 for r in d["variants"])


@pytest.mark.parametrize(
    "args,needle",
    [
        (["plan", "memory", "--params", "7.5B", "--zero", "5"], "zero"),
        (["plan", "memory", "--n-layer", "4"], "--d-model"),
        (["plan", "memory", "--params", "7.5B", "--dp", "0"], "dp"),
        (["plan", "memory", "--params", "lots"], "--params"),
    ],
)
def test_plan_memory_bad_input_exit_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
