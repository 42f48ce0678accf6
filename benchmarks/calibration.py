"""Calibration backtest on every IsoFLOP/joint data set in ../shared/data; writes docs/calibration.md.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration.py              # writes docs/calibration.md
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration.py --no-write --resamples 50   # quick look

For each set (Epoch AI's 240 Chinchilla points, Marin's three corpora, Open-Athena's eight experiments,
Porian et al.'s fifteen configurations, misfitting's final checkpoints, Llama 3's IsoFLOPs): fit the
Chinchilla form with a bootstrap on all budgets below the top one (and below the top two; C above the 80th
percentile for Epoch and misfitting, which have no budget labels), predict the held-out runs, and count how
often the 80 % and 95 % prediction intervals hold, parameter-only and calibrated by a nested backtest
(scalinglab.laws.calibration). The same numbers come from ``scalinglab backtest`` on one set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from scalinglab.study.calibration import run_calibration, shared_sets

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SCALINGLAB_SHARED_DATA", REPO.parent / "shared" / "data"))
DOC = REPO / "docs" / "calibration.md"
COMMAND = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/calibration.py"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resamples", type=int, default=200, help="bootstrap resamples per fit")
    ap.add_argument("--no-write", action="store_true", help="print the table only")
    args = ap.parse_args()
    specs = shared_sets(DATA)
    if not specs:
        sys.exit(f"no shared data sets found in {DATA} (set SCALINGLAB_SHARED_DATA)")
    t0 = time.perf_counter()
    report = run_calibration(specs, n_resamples=args.resamples,
                             progress=lambda m: print(m, file=sys.stderr, flush=True))
    wall = time.perf_counter() - t0
    s = report.summary
    table = report.markdown()
    lines = [
        f"{len(specs)} data sets, {s['n_rows']} splits, {s['n_test']} held-out runs; {args.resamples} "
        f"bootstrap resamples per fit; {wall:.0f} s wall on this machine.",
        "",
        "| coverage | 80 % | 95 % |",
        "|---|---|---|",
    ]
    for key, what in (("ci", "confidence interval (parameters only)"),
                      ("pi", "prediction interval (parameters + run scatter)"),
                      ("cal", "calibrated prediction interval (nested backtest)")):
        pooled = s["coverage_pooled"]
        mean = s["coverage_mean_over_rows"]
        lines.append(f"| {what}: pooled over runs (mean over splits) | {100 * pooled[key + '80']:.1f} % "
                     f"({100 * mean[key + '80']:.1f} %) | {100 * pooled[key + '95']:.1f} % "
                     f"({100 * mean[key + '95']:.1f} %) |")
    lines += ["", f"Median over splits of the median |relative error|: loss "
              f"{100 * s['loss_median_abs_rel_error']:.2f} %, N_opt "
              f"{100 * s['n_opt_median_abs_rel_error']:.1f} %, L*(C) "
              f"{100 * s['lstar_median_abs_rel_error']:.2f} %.", "", table]
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        _write(body, args.resamples)


def _write(body: str, resamples: int) -> None:
    text = DOC.read_text() if DOC.exists() else ""
    start, end = "<!-- calibration-table -->", "<!-- /calibration-table -->"
    cmd = COMMAND + ("" if resamples == 200 else f" --resamples {resamples}")
    block = f"{start}\nRegenerate with `{cmd}`.\n\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)
    print(f"wrote {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
