"""Verifiable tasks (distinct problems, a corpus that never holds a test prompt, exact checking), the
registry's evals table, and `scalinglab eval` bad input (one line, exit 2)."""

from __future__ import annotations

import json

import pytest

from scalinglab.data.tasks import (
    TaskSpec,
    check_answer,
    corpus_lines,
    make_problems,
    read_problems,
    write_problems,
)
from scalinglab.errors import ConfigError, DataError
from tests.conftest import exit2


@pytest.mark.parametrize("name", ["addition", "reversal"])
def test_problems_are_distinct_correct_and_absent_from_the_corpus(name):
    spec = TaskSpec(name=name, size=3)
    problems = make_problems(spec, 300, seed=2)
    assert len({p.prompt for p in problems}) == 300
    for p in problems[:50]:
        if name == "addition":
            a, b = p.prompt[:-1].split("+")
            assert len(a) == len(b) == 3 and int(p.answer) == int(a) + int(b)
        else:
            assert p.answer == p.prompt[:-1][::-1]
    lines = corpus_lines(spec, 5000, exclude=problems)
    prompts = {p.prompt for p in problems}
    assert len(lines) == 5000
    assert not {line.split("=")[0] + "=" if name == "addition" else line.split(">")[0] + ">"
                for line in lines} & prompts
    assert make_problems(spec, 5, seed=2) == problems[:5]


def test_check_answer_is_exact_on_the_first_line():
    assert check_answer(" 579\n12+3=15", "579") == ("579", True)
    assert check_answer("5790", "579") == ("5790", False)


def test_problem_set_round_trip_and_bad_lines(tmp_path):
    spec = TaskSpec(name="reversal", size=4)
    problems = make_problems(spec, 10)
    write_problems(tmp_path / "p.jsonl", spec, problems)
    assert read_problems(tmp_path / "p.jsonl") == ("reversal", problems)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": 1, "prompt": "x"}) + "\n")
    with pytest.raises(DataError, match="bad.jsonl:1"):
        read_problems(tmp_path / "bad.jsonl")


@pytest.mark.parametrize("kw", [dict(name="division"), dict(size=0), dict(size=99)])
def test_bad_task_spec(kw):
    with pytest.raises(ConfigError):
        TaskSpec(**kw)


def test_registry_keeps_evals(tmp_path):
    from scalinglab.sweep.registry import Registry

    with Registry.open(tmp_path / "registry.sqlite") as reg:
        assert reg.evals() == []
        reg.ensure_sweep("s", {"a": 1})
        reg.add_run("s", "r1", {"x": 1})
        reg.record_eval("r1", "addition", {"pass_at_k": [0.1, 0.2], "n_samples": 2})
        reg.record_eval("r1", "addition", {"pass_at_k": [0.3, 0.4], "n_samples": 2})
        assert reg.evals() == [{"pass_at_k": [0.3, 0.4], "n_samples": 2, "run_id": "r1", "task": "addition"}]
        with pytest.raises(Exception, match="no run"):
            reg.record_eval("nope", "addition", {})


def test_eval_cli_bad_input(tmp_path, capsys):
    assert "division" in exit2(["eval", str(tmp_path), "--task", "division"], capsys)
    assert "neither a run folder" in exit2(["eval", str(tmp_path), "--task", "addition"], capsys)
    assert "not found" in exit2(["eval", str(tmp_path), "--problem-set", str(tmp_path / "x.jsonl")], capsys)
