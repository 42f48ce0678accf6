"""`scalinglab model count`: table and JSON on stdout, bad shapes exit 2 with one line, no torch import."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scalinglab import arch
from scalinglab.cli.app import app
from tests.conftest import exit2

runner = CliRunner()


def test_count_json_matches_arch():
    result = runner.invoke(app, ["model", "count", "--depth", "4", "--vocab-size", "256", "--seq-len", "128",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    cfg = arch.GPTConfig.from_depth(4, vocab_size=256, seq_len=128)
    assert data["params"]["total"] == arch.count_params(cfg).total
    assert data["params"]["non_embedding"] == arch.count_params(cfg).non_embedding
    assert data["flops_per_token"]["counted"] == pytest.approx(arch.flops_per_token(cfg).counted)
    assert data["training_flops"] is None


def test_count_moe_sparse_with_tokens():
    result = runner.invoke(app, ["model", "count", "--depth", "4", "--experts", "8", "--top-k", "2",
                                 "--attention", "bigbird", "--window", "64", "--tokens", "1B", "--untied",
                                 "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["config"]["attention"]["kind"] == "bigbird" and data["config"]["n_experts"] == 8
    assert data["params"]["active"] < data["params"]["total"]
    assert data["training_flops"]["six_nd"] == pytest.approx(6 * data["params"]["active"] * 1e9)
    assert data["flops_per_token"]["attention"] > 0


def test_count_explicit_shape_table():
    result = runner.invoke(app, ["model", "count", "--d-model", "128", "--n-layer", "3", "--n-head", "4",
                                 "--vocab-size", "256", "--tied"])
    assert result.exit_code == 0, result.output
    cfg = arch.GPTConfig(d_model=128, n_layer=3, n_head=4, vocab_size=256, seq_len=1024, tied_embeddings=True)
    assert f"{arch.count_params(cfg).total:,}" in result.stdout
    assert "Kaplan" in result.stdout and "Chinchilla" in result.stdout


@pytest.mark.parametrize("name,total,active", [
    ("gpt2-124m", 124_439_808, 124_439_808), ("gpt2-1.5b", 1_557_611_200, 1_557_611_200),
    ("llama2-7b", 6_738_415_616, 6_738_415_616), ("llama2-70b", 68_976_648_192, 68_976_648_192),
    ("llama3-8b", 8_030_261_248, 8_030_261_248), ("llama3-70b", 70_553_706_496, 70_553_706_496),
    ("llama3-405b", 405_853_388_800, 405_853_388_800), ("mixtral-8x7b", 46_702_792_704, 12_879_925_248),
])
def test_count_preset_exact(name, total, active):
    result = runner.invoke(app, ["model", "count", "--preset", name, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["params"]["total"], data["params"]["active"]) == (total, active)
    assert data["preset"]["name"] == name and data["preset"]["modified"] is False
    assert f"{total:,}" in runner.invoke(app, ["model", "count", "--preset", name]).stdout


def test_count_gopher_shows_both_numbers_and_why():
    result = runner.invoke(app, ["model", "count", "--preset", "gopher-280b"])
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "258,224,963,584" in out and "279,699,800,064" in out and "-0.11 %" in out
    assert "relative-position" in out and "Rae et al. 2021" in out


def test_count_preset_with_override():
    result = runner.invoke(app, ["model", "count", "--preset", "llama3-8b", "--seq-len", "131072", "--json"])
    data = json.loads(result.stdout)
    assert data["config"]["seq_len"] == 131072 and data["preset"]["modified"] is True
    assert data["params"]["total"] == 8_030_261_248  # RoPE has no parameters: longer context, same N


def test_count_swiglu_and_kv_head_aliases():
    base = ["model", "count", "--d-model", "256", "--n-layer", "2", "--vocab-size", "256", "--mlp", "swiglu",
            "--multiple-of", "64", "--json"]
    a = json.loads(runner.invoke(app, [*base, "--kv-heads", "2"]).stdout)
    b = json.loads(runner.invoke(app, [*base, "--n-kv-head", "2"]).stdout)
    assert a == b and a["config"]["n_kv_head"] == 2 and a["config"]["mlp"] == "swiglu"
    cfg = arch.GPTConfig(d_model=256, n_layer=2, n_head=4, vocab_size=256, seq_len=1024, mlp="swiglu",
                         multiple_of=64, n_kv_head=2)
    assert cfg.d_mlp == 704  # int(8 * 256 / 3) = 682 -> next multiple of 64
    assert a["params"]["total"] == arch.count_params(cfg).total


@pytest.mark.parametrize("args,fragment", [
    (["--preset", "llama-3-8b"], "did you mean 'llama3-8b'"),
    (["--preset", "llama3-8b", "--depth", "4"], "drop --depth"),
    (["--depth", "2", "--mlp", "relu"], "--mlp='relu' is not allowed"),
    (["--depth", "2", "--kv-heads", "3"], "--n-kv-head=3 does not divide"),
    (["--depth", "2", "--ffn-dim-multiplier", "1.3"], "only applies to mlp='swiglu'"),
    (["--depth", "4", "--n-head", "5"], "does not divide"),
    (["--depth", "2", "--seq-len", "32", "--attention", "local", "--window", "64"], "larger than seq_len"),
    (["--depth", "2", "--experts", "2", "--top-k", "3"], "exceeds n_experts"),
    (["--n-layer", "2"], "--depth"),
    (["--preset", "gpt2-124m", "--rope-theta", "5e5"], "only applies to pos='rope'"),
    (["--depth", "0"], "depth"),
    (["--depth", "2", "--attention", "strided", "--window", "8"], "kind"),
])
def test_bad_shapes_exit_2_with_one_line(args, fragment, capsys):
    assert fragment in exit2(["model", "count", *args], capsys)
