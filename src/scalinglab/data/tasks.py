"""Verifiable tasks: generated problems whose answers a program checks exactly (no judge, no reference model).

``addition``: ``"123+456="`` -> ``"579"`` (operands of exactly ``size`` digits). ``reversal``: ``"abcde>"`` ->
``"edcba"`` (``size`` lower-case letters). One example is one line, ``prompt + answer + "\\n"``.

:func:`write_task_corpus` writes a training corpus of the task in the prepared-corpus format (byte tokenizer,
:func:`scalinglab.data.prepare.prepare`), leaving out every prompt of the problem set so the evaluation is
on unseen problems; :func:`write_problems` writes the problem set as JSONL (``id, task, prompt, answer``).

Example::

    from scalinglab.data.tasks import TaskSpec, make_problems, write_task_corpus
    spec = TaskSpec(name="addition", size=3)
    problems = make_problems(spec, 200, seed=1)
    write_task_corpus(spec, "/tmp/add3", n_examples=50_000, exclude=problems)
"""

from __future__ import annotations

import json
import random
import string
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scalinglab.errors import ConfigError, DataError
from scalinglab.fileio import atomic_write_text

TASKS = ("addition", "reversal")
MAX_SIZE = 12
LINES_PER_DOCUMENT = 1000  # documents are the unit of the train/val split in prepare()
STOP = "\n"


@dataclass(frozen=True, kw_only=True)
class TaskSpec:
    """A task and its size (digits per operand for addition, letters for reversal)."""

    name: str = "addition"
    size: int = 3

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise ConfigError(f"task {self.name!r} is not known; use one of {', '.join(TASKS)}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 1 <= self.size <= MAX_SIZE:
            raise ConfigError(f"task size={self.size!r} must be an integer in [1, {MAX_SIZE}]")


@dataclass(frozen=True)
class Problem:
    """One problem: its id, the prompt the model continues, and the exact answer."""

    problem_id: str
    prompt: str
    answer: str

    def to_dict(self, task: str) -> dict:
        return {"id": self.problem_id, "task": task, "prompt": self.prompt, "answer": self.answer}


def _example(spec: TaskSpec, rng: random.Random) -> tuple[str, str]:
    if spec.name == "addition":
        lo, hi = 10 ** (spec.size - 1) if spec.size > 1 else 0, 10 ** spec.size - 1
        a, b = rng.randint(lo, hi), rng.randint(lo, hi)
        return f"{a}+{b}=", str(a + b)
    word = "".join(rng.choice(string.ascii_lowercase) for _ in range(spec.size))
    return f"{word}>", word[::-1]


def make_problems(spec: TaskSpec, n: int, *, seed: int = 0) -> tuple[Problem, ...]:
    """``n`` distinct problems (fewer only if the task has fewer), deterministic in ``seed``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"number of problems {n!r} must be a positive integer")
    rng, seen, out = random.Random(f"problems:{spec.name}:{spec.size}:{seed}"), set(), []
    for _ in range(50 * n):
        prompt, answer = _example(spec, rng)
        if prompt not in seen:
            seen.add(prompt)
            out.append(Problem(f"{spec.name}-{len(out):05d}", prompt, answer))
            if len(out) == n:
                break
    return tuple(out)


def check_answer(text: str, answer: str) -> tuple[str, bool]:
    """The answer extracted from a sample (its first line, stripped) and whether it is exactly right."""
    extracted = text.split(STOP, 1)[0].strip()
    return extracted, extracted == answer


def write_problems(path: str | Path, spec: TaskSpec, problems: Sequence[Problem]) -> Path:
    """Write the problem set as JSONL (atomic)."""
    text = "".join(json.dumps(p.to_dict(spec.name)) + "\n" for p in problems)
    return atomic_write_text(Path(path), text)


def read_problems(path: str | Path) -> tuple[TaskSpec | None, tuple[Problem, ...]]:
    """Read a JSONL problem set (DataError on a missing file or a line without id/prompt/answer)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"problem set {path} not found; write one with `scalinglab eval --problems-out`")
    problems, task = [], None
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problems.append(Problem(str(row["id"]), str(row["prompt"]), str(row["answer"])))
            task = row.get("task", task)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"{path}:{i}: not a problem line with id, prompt, answer ({err})") from err
    if not problems:
        raise DataError(f"problem set {path} is empty")
    return task, tuple(problems)


def corpus_lines(spec: TaskSpec, n_examples: int, *, seed: int = 0,
                 exclude: Iterable[Problem] = ()) -> list[str]:
    """``n_examples`` training lines ``prompt + answer``, none of whose prompts is in ``exclude``."""
    banned = {p.prompt for p in exclude}
    rng, lines = random.Random(f"corpus:{spec.name}:{spec.size}:{seed}"), []
    for _ in range(20 * n_examples):
        prompt, answer = _example(spec, rng)
        if prompt not in banned:
            lines.append(prompt + answer)
            if len(lines) == n_examples:
                break
    return lines


def write_task_corpus(spec: TaskSpec, out_dir: str | Path, *, n_examples: int, seed: int = 0,
                      exclude: Iterable[Problem] = (), overwrite: bool = False) -> dict:
    """Write a prepared corpus (byte tokenizer) of ``n_examples`` task lines; returns its manifest."""
    from scalinglab.data.prepare import prepare

    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise ConfigError(f"n_examples={n_examples!r} must be a positive integer")
    lines = corpus_lines(spec, n_examples, seed=seed, exclude=exclude)
    with tempfile.TemporaryDirectory(prefix="scalinglab-task-") as raw:
        for i in range(0, len(lines), LINES_PER_DOCUMENT):
            doc = "".join(line + STOP for line in lines[i:i + LINES_PER_DOCUMENT])
            (Path(raw) / f"{spec.name}_{i // LINES_PER_DOCUMENT:06d}.txt").write_text(doc, encoding="utf-8")
        return prepare([raw], out_dir, tokenizer="byte", val_fraction=0.05, seed=seed, overwrite=overwrite)
