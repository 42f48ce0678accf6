"""Report sections from the task evaluations a sweep's registry holds (``scalinglab eval SWEEP_DIR``).

Each (run, task) record carries its per-problem successes; they become a
:class:`~scalinglab.laws.downstream_io.SamplesTable`, the coverage summary of :mod:`scalinglab.laws` fits it
(power law and Beta-binomial), and :func:`scalinglab.report.downstream.coverage_section` draws coverage vs k.
Torch-free.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import numpy as np

from scalinglab.errors import ScalingLabError


def coverage_sections(sweep_dir: str | Path) -> list[str]:
    """One HTML coverage section per evaluated (run, task) of the sweep; empty when nothing was evaluated."""
    from scalinglab.laws.coverage_summary import summarize_coverage
    from scalinglab.laws.downstream_io import SamplesTable
    from scalinglab.report.downstream import coverage_section
    from scalinglab.sweep.registry import REGISTRY_FILENAME, Registry

    path = Path(sweep_dir) / REGISTRY_FILENAME
    if not path.is_file():
        return []
    with Registry.open(path, create=False) as reg:
        records = reg.evals()
    sections = []
    for r in records:
        c = np.asarray(r["correct_per_problem"], dtype=int)
        table = SamplesTable(problems=tuple(str(i) for i in range(len(c))), n=np.full(len(c), r["n_samples"]),
                             c=c, source=f"{r['run_id']} {r['task']}")
        try:
            summary = summarize_coverage(table, fit_k=min(8, int(r["n_samples"])))
        except ScalingLabError as err:  # e.g. every problem unsolved: nothing to fit, say so in the page
            head = f"<section><h2>{escape(str(r['run_id']))}: {escape(r['task'])}</h2>"
            sections.append(f"{head}<p>no coverage fit: {escape(str(err))}</p></section>")
            continue
        sections.append(coverage_section(summary.to_dict(), title=f"Coverage vs samples: run {r['run_id']}, "
                                                                   f"{r['task']} (size {r['size']})"))
    return sections
