"""Foundation: units round-trip, the error hierarchy, and the torch-free import contract."""

from __future__ import annotations

import pytest

from scalinglab import errors, units
from scalinglab.cli import app as cli_app
from tests.conftest import exit2


@pytest.mark.parametrize("text,value", [
    ("7B", 7e9), ("1.4T", 1.4e12), ("1e21", 1e21), ("20M", 2e7), ("512", 512.0), ("3.5k", 3500.0),
    ("2T tokens", 2e12), ("1_000", 1000.0), (" 124M ", 1.24e8),
])
def test_parse_count(text, value):
    assert units.parse_count(text) == pytest.approx(value)


def test_parse_flops_accepts_flops_word_and_refuses_parsecs():
    assert units.parse_flops("1e21 flops") == 1e21
    assert units.parse_flops("1e21 FLOPs") == 1e21
    with pytest.raises(errors.UnitError, match="parsecs"):
        units.parse_flops("1e21 parsecs")


@pytest.mark.parametrize("text,value",
                         [("80GiB", 80 * 2**30), ("80GB", 80e9), ("80G", 80e9), ("1024", 1024.0),
                                        ("1.5MiB", 1.5 * 2**20)])
def test_parse_bytes(text, value):
    assert units.parse_bytes(text) == pytest.approx(value)


@pytest.mark.parametrize("bad", ["", "abc", "7X", "1e21e5", "nan", "inf", "--3", "7B7"])
def test_parse_count_rejects_garbage_with_value_error(bad):
    with pytest.raises(ValueError):
        units.parse_count(bad)


@pytest.mark.parametrize("value,text",
                         [(7e9, "7B"), (1.4e12, "1.4T"), (512, "512"), (2e7, "20M"), (1.24e8, "124M")])
def test_format_count_round_trips(value, text):
    assert units.format_count(value) == text
    assert units.parse_count(units.format_count(value)) == pytest.approx(value)


def test_format_bytes_and_usd():
    assert units.format_bytes(14e9) == "14GB"
    assert units.format_bytes(80 * 2**30, binary=True) == "80GiB"
    assert units.format_usd(2.1e6) == "$2.1M"


def test_parse_list():
    assert units.parse_list("1e11,3e11,1e12", units.parse_flops) == [1e11, 3e11, 1e12]
    with pytest.raises(errors.UnitError):
        units.parse_list("1e11,,1e12")


def test_error_hierarchy():
    for cls in (errors.ConfigError, errors.DataError, errors.PlanError, errors.UnitError):
        assert issubclass(cls, errors.ScalingLabError) and issubclass(cls, ValueError)
    for cls in (errors.FitError, errors.CheckpointError, errors.RegistryError, errors.DivergedError):
        assert issubclass(cls, errors.ScalingLabError)
    assert errors.DivergedError("x", step=7).step == 7


def test_error_line_keeps_square_brackets(monkeypatch, capsys):
    def boom(*a, **k):
        raise errors.DataError("rows [3, 7] have loss <= 0; drop them")
    monkeypatch.setattr(cli_app, "app", boom)
    with pytest.raises(SystemExit) as ex:
        cli_app.main([])
    assert ex.value.code == 2
    err = capsys.readouterr().err
    assert "rows [3, 7] have loss <= 0" in err and err.count("\n") == 1


def test_typer_exit_code_survives_main(monkeypatch):
    import typer

    small = typer.Typer()

    @small.command()
    def fails() -> None:
        raise typer.Exit(3)

    monkeypatch.setattr(cli_app, "app", small)
    with pytest.raises(SystemExit) as ex:
        cli_app.main([])
    assert ex.value.code == 3


@pytest.mark.parametrize("argv", [["plan", "--gpus", "abc"], ["predict", "--bogus"], ["no-such-command"],
                                  ["plan", "--compute", "1e21", "parsecs"]])
def test_usage_errors_are_one_line_exit_2(argv, capsys):
    exit2(argv, capsys)
