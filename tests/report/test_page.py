"""The HTML report on synthetic data: self-contained, escaped, figures present, opens cleanly in Chromium."""

from __future__ import annotations

import re

import numpy as np
import pytest

from scalinglab.errors import ReportError
from scalinglab.report import figures
from scalinglab.report.page import render_html, write_report
from scalinglab.study import StudyAnalysis, load_analysis
from tests.report.chromium import open_in_chromium

EVIL = "<script>alert(1)</script>"


def synthetic_data() -> StudyAnalysis:
    runs, curves = [], {}
    for budget in (1e10, 1e11, 1e12):
        n_opt = 0.1 * budget ** 0.5
        for i, f in enumerate((0.25, 0.5, 1, 2, 4)):
            n = n_opt * f
            d = budget / (6 * n)
            loss = 1.8 + 400 / n ** 0.34 + 400 / d ** 0.28
            rid = EVIL if (budget, i) == (1e12, 4) else f"b{budget:.0e}-s{i}"
            runs.append(dict(run_id=rid, n_params=n, n_tokens=d, compute_flops=budget, loss=loss,
                             budget=budget,
                             status="done", error=None, attempts=1))
            t = np.linspace(d / 20, d, 20)
            curves[rid] = {"tokens": t.tolist(), "loss": (loss + 3 * (t / d) ** -0.5 - 3).tolist()}
    runs.append(dict(run_id="div & <b>bold</b>", n_params=1e5, n_tokens=1e6, compute_flops=1e12, loss=None,
                     budget=1e12, status="diverged", error="loss is NaN at step 12 <lr too high>",
                     attempts=1))
    grid = np.logspace(10, 13, 20)
    analysis = {
        "approach2": {"a": 0.5, "a_ci": [0.45, 0.55], "b": 0.5, "b_ci": [0.45, 0.55],
                      "vertices": [{"budget": b, "n_opt": 0.1 * b ** 0.5,
                                    "n_opt_ci": [0.08 * b ** 0.5, 0.12 * b ** 0.5],
                                    "d_opt": b / (0.6 * b ** 0.5), "loss": 3.0} for b in (1e10, 1e11, 1e12)],
                      "curve": {"compute": grid.tolist(), "n_fit": (0.1 * grid ** 0.5).tolist(),
                                "n_lo": (0.08 * grid ** 0.5).tolist(), "n_hi": (0.12 * grid ** 0.5).tolist(),
                                "d_fit": (grid / (0.6 * grid ** 0.5)).tolist(), "d_lo": None, "d_hi": None}},
        "approach3": {"params": {"E": 1.8, "A": 400.0, "B": 400.0, "alpha": 0.34, "beta": 0.28},
                      "ci": {"alpha": [0.3, 0.38]}, "a": 0.45, "a_ci": [0.4, 0.5], "n_points": 15,
                      "status": "converged", "warnings": []},
        "backtest": {"description": "fit below 1e12, predict 1e12", "rows": [
            {"label": "C = 1e12 minimum", "actual": 3.0, "predicted": 3.1, "rel_error": 0.033}]},
        "plan": {"description": "10x compute", "rows": [["compute", "1e13"], ["N_opt", EVIL]]},
        "references": {"Chinchilla": {"compute": grid.tolist(), "n_opt": (0.09 * grid ** 0.5).tolist(),
                                      "d_opt": (grid / (0.54 * grid ** 0.5)).tolist()}},
        "errors": {"approach1": "needs curves <x>"},
        "notes": ["1 diverged run excluded from the fit"],
    }
    return StudyAnalysis.from_dict(dict(title=f"test sweep {EVIL}", runs=runs, curves=curves,
                                        analysis=analysis,
                                        created="2026-11-23T00:00:00+00:00"))


def test_page_is_self_contained_and_escapes_user_strings():
    page = render_html(synthetic_data())
    assert "<script" not in page.lower()  # no JS at all, and the evil run name is escaped
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "div &amp; &lt;b&gt;bold&lt;/b&gt;" in page and "&lt;lr too high&gt;" in page
    assert not re.search(r"(src|href)\s*=\s*['\"]?(https?:)?//", page)  # no external assets
    assert page.count("<svg") == 3
    for fid in ("fig-isoflop", "fig-allocation", "fig-curves"):
        assert f'id="{fid}"' in page
    assert "excluded from every fit" in page and "loss is NaN at step 12" in page


def test_page_round_trips_through_json(tmp_path):
    data = synthetic_data()
    path = tmp_path / "fit.json"
    import json

    path.write_text(json.dumps(data.to_dict()))
    again = load_analysis(path)
    assert render_html(again) == render_html(data)


def test_bad_report_inputs_are_report_errors(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        load_analysis(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        load_analysis(tmp_path / "x.json")
    (tmp_path / "y.json").write_text('{"a": 1}')
    with pytest.raises(ReportError, match="needs 'runs'"):
        load_analysis(tmp_path / "y.json")


def test_parabola_minimum_recovered():
    n = np.logspace(4, 6, 7)
    loss = 2 + 0.3 * (np.log10(n) - 5.2) ** 2
    coef = figures.fit_parabola(n, loss)
    assert -coef[1] / (2 * coef[0]) == pytest.approx(5.2)
    assert figures.fit_parabola(n[:2], loss[:2]) is None


def test_empty_sweep_still_renders():
    page = render_html(StudyAnalysis(title="empty"))
    assert page.count("<svg") == 3 and "No law could be fitted" in page


def test_report_opens_in_headless_chromium(tmp_path):
    page = write_report(synthetic_data(), tmp_path / "report.html")
    view = open_in_chromium(page, tmp_path)
    assert view.screenshot.exists() and view.screenshot.stat().st_size > 10_000
    assert view.console == [], view.console
    assert view.dom.count("<svg") == 3 and 'id="fig-allocation"' in view.dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in view.dom  # shown as text, not run
