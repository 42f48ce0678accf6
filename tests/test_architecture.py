"""The shape of the system (../shared/STYLE.md), held by tests: which top-level package may import which, no
import cycle between modules, and which entry points must not pay for torch.

Imports are read with ``ast`` from every file under src/, including the ones inside functions (a lazy import
is still a dependency), so nothing is imported to build the graph.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
ROOT = "scalinglab"

SHARED = {"errors", "units", "fileio", "validate"}  # small modules every package may use
# package -> the top-level packages it may import (besides itself and SHARED). Data flows down the loop; only
# study and cli reach across steps (STYLE.md, "Allowed imports").
ALLOWED: dict[str, set[str]] = {
    **{m: set() for m in SHARED},  # the shared modules may use each other
    "arch": set(),
    "laws": {"arch"},
    "plan": {"laws", "arch"},
    "data": set(),
    "model": {"arch"},
    # A strategy wraps a model built from arch's config; it must not import train (train calls it).
    "parallel": {"arch", "model"},
    # train/loop.py looks the device's peak FLOP/s up in plan.hardware to report MFU.
    "train": {"arch", "data", "model", "parallel", "plan"},
    "sweep": {"arch", "data", "model", "train"},
    "report": set(),
    "study": {"arch", "data", "model", "train", "parallel", "sweep", "laws", "plan", "report"},
    "cli": {"arch", "data", "model", "train", "parallel", "sweep", "laws", "plan", "report", "study"},
    "__main__": {"cli"},  # python -m scalinglab (torchrun ... -m scalinglab train)
}
# Cycles tolerated for now (none: the 7-module laws/forms.py <-> laws/data_constrained.py cycle is gone).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SRC.joinpath(ROOT).rglob("*.py"))}


def _resolve(name: str) -> str | None:
    """The module ``name`` loads: itself if it is one of ours, else its nearest package that is."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, source: str) -> Iterator[str]:
    """Every scalinglab module ``source`` imports, at any depth of the file (functions included)."""
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from pkg import name" loads pkg.name when it is a module, else pkg (the name is an attribute).
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for t in targets:
            if t == ROOT or t.startswith(ROOT + "."):
                resolved = _resolve(t)
                if resolved and resolved != module:
                    yield resolved


def module_graph(sources: dict[str, str] | None = None) -> dict[str, set[str]]:
    """module -> the modules it imports; ``sources`` overrides file contents (to test the test)."""
    sources = sources or {}
    return {m: set(_imports(m, sources.get(m) or p.read_text(encoding="utf-8"))) for m, p in MODULES.items()}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def forbidden_edges(graph: dict[str, set[str]]) -> list[str]:
    """``"a.b -> c.d (a may not import c)"`` for every edge the ALLOWED table does not permit."""
    bad = []
    for src, targets in sorted(graph.items()):
        a = _top(src)
        for dst in sorted(targets):
            b = _top(dst)
            if b in ("", a) or b in SHARED:
                continue
            if a not in ALLOWED:
                bad.append(f"{src} -> {dst} (package {a!r} is not in the ALLOWED table; add it)")
            elif b not in ALLOWED[a]:
                bad.append(f"{src} -> {dst} ({a} may not import {b})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan 1972), iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.add(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    out.append(comp)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_graph()


def test_every_package_is_in_the_table(graph):
    tops = {_top(m) for m in graph} - {""}
    assert tops <= set(ALLOWED), f"add {sorted(tops - set(ALLOWED))} to ALLOWED"


def test_packages_import_only_what_the_table_allows(graph):
    assert forbidden_edges(graph) == []


def test_no_import_cycle_between_modules(graph):
    found = [c for c in cycles(graph) if frozenset(c) not in KNOWN_CYCLES]
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in found)


def test_the_graph_test_catches_a_report_import_in_sweep():
    """What a reviewer would miss: sweep reaching up into report, inside a function."""
    module = "scalinglab.sweep.registry"
    added = "\n\ndef _page():\n    from scalinglab.report import page\n"
    source = MODULES[module].read_text(encoding="utf-8") + added
    bad = forbidden_edges(module_graph({module: source}))
    assert bad == ["scalinglab.sweep.registry -> scalinglab.report.page (sweep may not import report)"]


def test_the_cycle_finder_finds_a_planted_cycle():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(g) == [{"a", "b", "c"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


# Entry points that must not import torch (STYLE.md: only data loaders, model, train and parallel do). Each
# runs in a fresh interpreter; the CLI cases run a real command, so a lazy import on the command's path counts
# too.
_CLI = "import sys, typer; from typer.testing import CliRunner; "
LIGHT_MODULES = ("units", "errors", "fileio", "laws", "plan", "report", "arch", "cli.app")
NO_TORCH = {
    **{m: f"import scalinglab.{m}" for m in LIGHT_MODULES},
    "report-page": "import scalinglab.report.page",
    "parallel-config-and-launch-line": "import scalinglab.parallel.config, scalinglab.plan.launch",
    "study": "import scalinglab.study.analysis, scalinglab.study.demo, scalinglab.study.prior, "
             "scalinglab.study.record, scalinglab.study.run, scalinglab.study.evals, "
             "scalinglab.study.taskeval, scalinglab.sweep.evals, scalinglab.data.tasks",
    "sweep-registry": "import scalinglab.sweep.registry",
    "forecast-backtest": "import scalinglab.laws.intervals, scalinglab.laws.calibration, "
                         "scalinglab.study.calibration, scalinglab.study.forecast, "
                         "scalinglab.sweep.forecasts, scalinglab.cli.forecast, scalinglab.cli.backtest",
    "sweep-design": "import scalinglab.sweep.design, scalinglab.sweep.grid",
    "plan-make-plan": "import scalinglab.plan, scalinglab.plan.planner, scalinglab.laws.data_constrained, "
                      "scalinglab.cli.plan; from scalinglab.plan import make_plan; make_plan(1e21, n_gpus=8)",
    "train-config-and-data-prepare": "from scalinglab.train import TrainConfig; import "
                                     "scalinglab.data.prepare; import scalinglab.cli.data; "
                                     "TrainConfig.from_dict({'model': {'depth': 1}, 'n_tokens': 10**6})",
    "downstream-and-coverage": "import scalinglab.laws.downstream, scalinglab.laws.downstream_table, "
                               "scalinglab.laws.ladder, scalinglab.laws.testtime, scalinglab.laws.coverage, "
                               "scalinglab.laws.coverage_summary, scalinglab.laws.tradeoff, "
                               "scalinglab.report.downstream, scalinglab.cli.downstream",
    "returns-history-design": (
        "import scalinglab.laws.returns, scalinglab.laws.broken, scalinglab.plan.history, "
        "scalinglab.report.story, scalinglab.study.design_ci, scalinglab.study.design_prior, "
        "scalinglab.cli.returns, scalinglab.cli.history, scalinglab.cli.design\n"
        "from scalinglab.cli.app import main\n"
        "for argv in (['returns', '--compute', '1e24'], ['history', '--gpu', 'none']):\n"
        "    try:\n        main(argv)\n    except SystemExit as e:\n        assert not e.code"),
    "cli-model-count": _CLI + "from scalinglab.cli import model; app = typer.Typer(); model.register(app); "
                       "app.command('noop')(lambda: None); "
                       "r = CliRunner().invoke(app, ['model', 'count', '--depth', '2', '--json']); "
                       "assert r.exit_code == 0, r.output",
}


def _fit_cli_code(tmp_path: Path) -> str:
    """``scalinglab fit`` (Approach 2) on a noise-free IsoFLOP grid of the Chinchilla law (Hoffmann et al.
    2022)."""
    rows = ["run_id,n_params,n_tokens,compute_flops,loss,budget,status"]
    for budget in (1e18, 1e19, 1e20):
        for i, n in enumerate(0.1 * budget**0.5 * f for f in (0.25, 0.5, 1.0, 2.0, 4.0)):
            d = budget / (6 * n)
            loss = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
            rows.append(f"r{budget:.0e}-{i},{n!r},{d!r},{budget!r},{loss!r},{budget!r},done")
    path = tmp_path / "iso.csv"
    path.write_text("\n".join(rows) + "\n")
    return ("from scalinglab.cli.app import main\n"
            f"try:\n    main(['fit', {str(path)!r}, '--approach', '2', '--json'])\n"
            "except SystemExit as e:\n    assert not e.code\n")


@pytest.mark.parametrize("case", [*NO_TORCH, "cli-fit"])
def test_entry_point_does_not_import_torch(case, tmp_path):
    code = _fit_cli_code(tmp_path) if case == "cli-fit" else NO_TORCH[case]
    code = "import sys\n" + code + "\nassert 'torch' not in sys.modules, 'torch imported'\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, f"{case}: {proc.stderr[-2000:]}"


@pytest.mark.parametrize("package", ["sweep", "report", "study"])
def test_public_names_of_a_package_resolve(package):
    import importlib

    mod = importlib.import_module(f"{ROOT}.{package}")
    assert mod.__all__ and [n for n in mod.__all__ if not hasattr(mod, n)] == []
