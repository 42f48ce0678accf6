"""`scalinglab model count`: table and JSON on stdout, bad shapes exit 2 with one line, no torch import."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from scalinglab import arch
from scalinglab.cli.app import app, main

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
                                 "--attention", "bigbird", "--window", "64", "--tokens", "1B", "--untied", "--json"])
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


@pytest.mark.parametrize("args,fragment", [
    (["--depth", "4", "--n-head", "5"], "does not divide"),
    (["--depth", "2", "--seq-len", "32", "--attention", "local", "--window", "64"], "larger than seq_len"),
    (["--depth", "2", "--experts", "2", "--top-k", "3"], "exceeds n_experts"),
    (["--n-layer", "2"], "--depth"),
    (["--depth", "0"], "depth"),
    (["--depth", "2", "--attention", "strided", "--window", "8"], "kind"),
])
def test_bad_shapes_exit_2_with_one_line(args, fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["model", "count", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
