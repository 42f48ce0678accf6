"""Report sections for downstream accuracy and coverage: SVG figures from plain numbers, escaped text."""

from __future__ import annotations

import numpy as np

from scalinglab.laws.coverage_summary import summarize_coverage
from scalinglab.laws.downstream import backtest_downstream
from scalinglab.laws.downstream_forms import get_downstream_form
from scalinglab.laws.downstream_io import SamplesTable
from scalinglab.report.downstream import coverage_section, downstream_section

EVIL = "<script>alert(1)</script>"


def test_downstream_section_draws_curve_band_and_escapes_names():
    loss = np.linspace(2.5, 4.5, 10)
    acc = get_downstream_form("sigmoid_loss").predict(np.array([0.8, 3.0, 3.5]), loss, 0.25)
    bt = backtest_downstream(loss, acc, loss > 2.8, task=EVIL, chance=0.25, n_resamples=10,
                             models=[f"m{i}" for i in range(10)])
    html = downstream_section([bt.fit.curve(30)], [{"task": EVIL, "group": "", **bt.to_dict()}])
    assert html.count("<svg") == 1 and "<path" in html  # the curve and the band are drawn
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "held-out model" in html and "m0" in html


def test_coverage_section_uses_log_axes():
    rng = np.random.default_rng(0)
    c = rng.binomial(16, rng.beta(1, 4, 50))
    summary = summarize_coverage(SamplesTable(problems=tuple(map(str, range(50))), n=np.full(50, 16), c=c),
                                 fit_k=4, n_resamples=5)
    html = coverage_section(summary.to_dict())
    assert html.count("<svg") == 1 and "pass@16" in html
    assert "10^{0}" in html or "10^0" in html or "$\\mathdefault{10^{0}}$" in html  # log-scaled tick labels
