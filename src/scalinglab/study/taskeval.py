"""Evaluate a trained run on a verifiable task: sample ``n`` answers per problem, check them, and tabulate
coverage (pass@k, Chen et al. 2021) and majority-vote accuracy (self-consistency, Wang et al. 2023).
It lives in study/ because it crosses steps (a trained run, the sampler, laws' pass@k); torch is imported only
when a model is loaded or sampled.

Writes, in the evaluation folder: ``samples.csv`` (``problem,sample,correct,answer,text``: one row per sample,
the layout ``scalinglab fit-coverage`` reads), ``problems.jsonl`` (the problem set) and ``eval.json`` (the
:class:`TaskEval` record).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scalinglab.arch import GPTConfig
from scalinglab.data.tasks import Problem, TaskSpec, check_answer, write_problems
from scalinglab.errors import CheckpointError, ConfigError
from scalinglab.fileio import atomic_write_text

EVAL_DIR, EVAL_JSON, SAMPLES_CSV, PROBLEMS_JSONL = "eval", "eval.json", "samples.csv", "problems.jsonl"


@dataclass(frozen=True)
class TaskEval:
    """Coverage and majority-vote tables of one run on one task (plain numbers; ``to_dict`` is eval.json)."""

    run_dir: str
    task: str
    size: int
    n_problems: int
    n_samples: int
    temperature: float
    ks: tuple[int, ...]
    pass_at_k: tuple[float, ...]
    majority_at_k: tuple[float, ...]
    correct_per_problem: tuple[int, ...]

    @property
    def pass_at_1(self) -> float:
        return self.pass_at_k[0]

    def to_dict(self) -> dict:
        return {"run_dir": self.run_dir, "task": self.task, "size": self.size, "n_problems": self.n_problems,
                "n_samples": self.n_samples, "temperature": self.temperature, "ks": list(self.ks),
                "pass_at_k": list(self.pass_at_k), "majority_at_k": list(self.majority_at_k),
                "correct_per_problem": list(self.correct_per_problem)}


def load_trained(run_dir: str | Path):
    """The model (eval mode, CPU) and tokenizer of a run's newest checkpoint."""
    model, tok, _ = load_checkpoint_model(run_dir)
    return model, tok


def load_checkpoint_model(run_dir: str | Path):
    """``(model, tokenizer, checkpoint folder)`` of a run's newest checkpoint (model in eval mode, CPU)."""
    from scalinglab.data.prepare import read_manifest
    from scalinglab.data.tokenizers import ByteTokenizer, load_tokenizer
    from scalinglab.model import GPT
    from scalinglab.train import checkpoint as ckpt
    from scalinglab.train.rundir import saved_config

    cfg = saved_config(run_dir)
    found = ckpt.list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"{run_dir} has no checkpoint; train it to the end first")
    snap = ckpt.read(found[-1])
    model = GPT(GPTConfig.from_dict(snap.meta.get("model", cfg.model.to_dict())))
    model.load_state_dict(ckpt.model_state(snap), strict=True)
    tok = ByteTokenizer()  # the default corpus's
    if cfg.data_dirs:  # a mixture's corpora share one tokenizer (the loader checks it)
        tok = load_tokenizer(cfg.data_dirs[0], read_manifest(cfg.data_dirs[0])["tokenizer"])
    return model.eval(), tok, found[-1]


def coverage_ks(n_samples: int) -> tuple[int, ...]:
    """k = 1, 2, 4, ... up to ``n_samples`` (and ``n_samples`` itself)."""
    ks = [1]
    while ks[-1] * 2 <= n_samples:
        ks.append(ks[-1] * 2)
    return tuple(ks if ks[-1] == n_samples else [*ks, n_samples])


def evaluate_task(model, tokenizer, spec: TaskSpec, problems: Sequence[Problem], *, n_samples: int = 32,
                  temperature: float = 0.8, seed: int = 0, run_dir: str = "") -> tuple[TaskEval, list[dict]]:
    """Sample ``n_samples`` answers per problem and score them; returns the record and one row per sample."""
    from scalinglab.laws.testtime import majority_vote_accuracy, mean_pass_at_k
    from scalinglab.model.generate import SamplingConfig, generate

    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ConfigError(f"--samples {n_samples!r} must be a positive integer")
    longest = max(len(tokenizer.encode(p.answer)) for p in problems)
    sampling = SamplingConfig(max_new_tokens=longest + 2, temperature=temperature, stop=("\n",), seed=seed)
    prompts = [tokenizer.encode(p.prompt).tolist() for p in problems for _ in range(n_samples)]
    done = generate(model, prompts, sampling, tokenizer=tokenizer)  # no_grad inside
    rows, answers, correct = [], [], []
    for i, p in enumerate(problems):
        got = [check_answer(c.text, p.answer) for c in done[i * n_samples:(i + 1) * n_samples]]
        answers.append([a if a else None for a, _ in got])
        correct.append(sum(ok for _, ok in got))
        rows += [{"problem": p.problem_id, "sample": j, "correct": int(ok), "answer": a,
                  "text": done[i * n_samples + j].text} for j, (a, ok) in enumerate(got)]
    ks = coverage_ks(n_samples)
    n = [n_samples] * len(problems)
    result = TaskEval(run_dir=str(run_dir), task=spec.name, size=spec.size, n_problems=len(problems),
                      n_samples=n_samples, temperature=float(temperature), ks=ks,
                      pass_at_k=tuple(float(x) for x in mean_pass_at_k(n, correct, ks)),
                      majority_at_k=tuple(majority_vote_accuracy(answers, [p.answer for p in problems], k=k)
                                          for k in ks),
                      correct_per_problem=tuple(correct))
    return result, rows


def write_eval(out_dir: str | Path, spec: TaskSpec, problems: Sequence[Problem], result: TaskEval,
               rows: list[dict]) -> Path:
    """Write samples.csv, problems.jsonl and eval.json into ``out_dir`` (each atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["problem", "sample", "correct", "answer", "text"])
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / SAMPLES_CSV, buf.getvalue())
    write_problems(out / PROBLEMS_JSONL, spec, problems)
    atomic_write_text(out / EVAL_JSON, json.dumps(result.to_dict(), indent=2))
    return out
