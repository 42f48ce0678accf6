"""CLI: ``scalinglab eval RUN_DIR|SWEEP_DIR --task addition --samples 32`` — sample, check, tabulate.

Examples::

    scalinglab eval runs/add-d3 --task addition --size 3 --samples 32 --problems 200
    scalinglab eval sweeps/add --task addition --samples 16 --json     # every done run; kept in the registry

Writes ``RUN_DIR/eval/<task>/`` (samples.csv, problems.jsonl, eval.json) per run and prints pass@k and
majority@k. The problem set is generated from ``--seed`` (and never appears in a corpus written by
``scalinglab.data.tasks.write_task_corpus`` with the same problems excluded), or read with ``--problem-set``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console


def register(app: typer.Typer) -> None:
    """Attach this module's commands to the app."""
    app.command("eval")(eval_cmd)


def eval_cmd(
    target: Path = typer.Argument(..., help="A run folder, or a sweep folder (evaluates every done run)."),
    task: str = typer.Option("addition", "--task", help="addition or reversal."),
    size: int = typer.Option(3, "--size", help="Digits per operand (addition) or letters (reversal)."),
    samples: int = typer.Option(32, "--samples", help="Samples per problem (the largest k)."),
    problems: int = typer.Option(100, "--problems", help="Problems to generate."),
    problem_set: Path | None = typer.Option(None, "--problem-set", help="A problems.jsonl to use instead."),
    temperature: float = typer.Option(0.8, "--temperature", help="Sampling temperature (0 = greedy)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the problem set and of the sampler."),
    json_out: bool = JSON_OPTION,
) -> None:
    """Sample answers from the run's final checkpoint and print pass@k / majority-vote tables."""
    from scalinglab.data.tasks import TaskSpec, make_problems, read_problems
    from scalinglab.errors import ConfigError

    spec = TaskSpec(name=task, size=size)
    if problem_set is not None:
        named, chosen = read_problems(problem_set)
        if named not in (None, task):
            raise ConfigError(f"--problem-set {problem_set} holds {named!r} problems, not --task {task!r}")
    else:
        chosen = make_problems(spec, problems, seed=seed)
    results = [_eval_one(run_dir, run_id, registry, spec, chosen, samples, temperature, seed)
               for run_id, run_dir, registry in _targets(target)]
    if json_out:
        print_json({"results": results})
        return
    for r in results:
        _print_table(r)


def _targets(target: Path) -> list[tuple[str | None, Path, Path | None]]:
    """(registry run id, run folder, registry file) of every done run of a sweep folder, or (None, folder,
    None) for a run folder."""
    from scalinglab.errors import ConfigError
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    if (target / "config.json").is_file():
        return [(None, target, None)]
    if not (target / REGISTRY_FILENAME).is_file():
        raise ConfigError(f"{target} is neither a run folder (config.json) nor a sweep folder "
                          f"({REGISTRY_FILENAME}); pass the folder `scalinglab train/sweep` wrote")
    with Registry.open(target / REGISTRY_FILENAME, create=False) as reg:
        found = [(r.run_id, Path(reg.artefacts(r.run_id).get("run_dir", target / "runs" / r.run_id)),
                  target / REGISTRY_FILENAME) for r in reg.runs("done")]
    if not found:
        raise ConfigError(f"sweep {target} has no finished runs to evaluate; run `scalinglab sweep run` "
                          "first")
    return found


def _eval_one(run_dir: Path, run_id, registry, spec, problems, samples: int, temperature: float,
              seed: int) -> dict:
    from scalinglab.study.taskeval import EVAL_DIR, evaluate_task, load_trained, write_eval

    model, tok = load_trained(run_dir)
    result, rows = evaluate_task(model, tok, spec, problems, n_samples=samples, temperature=temperature,
                                 seed=seed, run_dir=str(run_dir))
    out = write_eval(run_dir / EVAL_DIR / spec.name, spec, problems, result, rows)
    record = result.to_dict()
    if registry is not None:
        from scalinglab.sweep.registry import Registry

        with Registry.open(registry, create=False) as reg:
            reg.record_eval(run_id, spec.name, record)
    info(f"wrote {out}")
    return {**record, "run_id": run_id, "out": str(out)}


def _print_table(r: dict) -> None:
    from rich.table import Table

    title = f"{r['run_id'] or r['run_dir']}: {r['task']} (size {r['size']}), {r['n_problems']} problems x " \
            f"{r['n_samples']} samples, T={r['temperature']:g}"
    table = Table(title=title)
    for col in ("k", "pass@k", "majority@k"):
        table.add_column(col, justify="right")
    for k, p, m in zip(r["ks"], r["pass_at_k"], r["majority_at_k"], strict=True):
        table.add_row(str(k), f"{p:.3f}", f"{m:.3f}")
    stdout_console().print(table)
