"""End to end on CPU: two tiny models trained on a generated addition corpus, sampled through the KV cache,
scored by `scalinglab eval` on a sweep folder (recorded in its registry), the coverage section drawn; the
deeper model's pass@1 is higher."""

from __future__ import annotations

import json
import time

import pytest

pytest.importorskip("torch")

from scalinglab.arch import GPTConfig  # noqa: E402
from scalinglab.data.tasks import TaskSpec, make_problems, write_problems, write_task_corpus  # noqa: E402
from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry  # noqa: E402
from scalinglab.train import TrainConfig, run  # noqa: E402

SPEC = TaskSpec(name="addition", size=2)
# Measured (docs/eval.md): on an idle 2-core machine depth 1 (d=32) trains in ~5 s, depth 3 (d=96) in ~40 s.
DEPTHS_TOKENS = ((1, 500_000), (3, 500_000))


@pytest.mark.slow
def test_deeper_model_solves_more_addition(tmp_path, capsys):
    from scalinglab.cli.app import main
    from scalinglab.study.evals import coverage_sections

    problems = make_problems(SPEC, 200, seed=7)
    write_problems(tmp_path / "problems.jsonl", SPEC, problems)
    write_task_corpus(SPEC, tmp_path / "corpus", n_examples=100_000, exclude=problems)
    sweep = tmp_path / "sweep"
    with Registry.open(sweep / REGISTRY_FILENAME) as reg:
        reg.ensure_sweep("add2", {"task": "addition", "size": 2})
        for depth, n_tokens in DEPTHS_TOKENS:
            model = GPTConfig.from_depth(depth, aspect_ratio=32, head_dim=32, vocab_size=257, seq_len=64)
            cfg = TrainConfig(model=model, n_tokens=n_tokens, data_dir=str(tmp_path / "corpus"),
                              batch_size=32, lr=3e-3, warmup_steps=20, eval_every=None)
            run_id = f"d{depth}"
            reg.add_run("add2", run_id, cfg.to_dict())
            t0 = time.perf_counter()
            result = run(cfg, sweep / "runs" / run_id)
            with capsys.disabled():
                print(f"\ndepth {depth}: trained in {time.perf_counter() - t0:.1f} s, loss "
                      f"{result.summary.loss:.3f}")
            reg.finish(run_id, "done", summary=result.summary.to_dict(), loss=result.summary.loss)
            reg.set_artefact(run_id, "run_dir", sweep / "runs" / run_id)
    capsys.readouterr()
    main(["eval", str(sweep), "--task", "addition", "--size", "2", "--samples", "16",
          "--problem-set", str(tmp_path / "problems.jsonl"), "--json"])  # returns (exit 0) on success
    results = {r["run_id"]: r for r in json.loads(capsys.readouterr().out)["results"]}
    with capsys.disabled():
        for rid, r in results.items():
            print(f"\n{rid}: pass@k {dict(zip(r['ks'], (round(p, 3) for p in r['pass_at_k']), strict=True))}")
    assert results["d1"]["ks"] == [1, 2, 4, 8, 16] and results["d1"]["n_problems"] == 200
    assert results["d3"]["pass_at_k"][0] > results["d1"]["pass_at_k"][0]
    for r in results.values():  # coverage never falls with k
        assert all(a <= b + 1e-12 for a, b in zip(r["pass_at_k"], r["pass_at_k"][1:], strict=False))
    assert (sweep / "runs" / "d3" / "eval" / "addition" / "samples.csv").is_file()
    with Registry.open(sweep / REGISTRY_FILENAME, create=False) as reg:
        stored = {e["run_id"]: e for e in reg.evals()}
    assert stored["d3"]["pass_at_k"] == results["d3"]["pass_at_k"]
    sections = coverage_sections(sweep)
    assert len(sections) == 2 and all("<svg" in s or "no coverage fit" in s for s in sections)
    assert any("<svg" in s for s in sections)
