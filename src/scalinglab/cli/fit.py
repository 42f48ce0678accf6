"""CLI: `scalinglab fit`, `scalinglab predict`, `scalinglab laws`.

Examples::

    scalinglab fit epoch_chinchilla_extracted.csv --n-col "Model Size" --c-col "Training FLOP" \\
        --drop-top-loss 5 --approach 3 --bootstrap 1000 --out fit.json
    scalinglab fit llama3_isoflop_points_extracted.csv --approach 2 --bootstrap 1000 --json
    scalinglab predict --law epoch2024 --compute 1e24
    scalinglab predict --law fit.json --params 7B --tokens 2T
    scalinglab laws

Data go to stdout (a rich table, or JSON with --json); progress to stderr. Library modules are imported inside
the commands, so none of these commands imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path

import typer

from scalinglab.cli.common import JSON_OPTION, info, print_json, stdout_console


def register(app: typer.Typer) -> None:
    """Attach ``fit``, ``predict`` and ``laws`` to the app."""
    app.command("fit")(fit_command)
    app.command("predict")(predict_command)
    app.command("laws")(laws_command)


# ------------------------------------------------------------------------------------------------------- fit
def fit_command(
    runs_csv: Path = typer.Argument(..., help="Runs CSV (one row per run: N, D and/or C, loss)."),
    form: str = typer.Option("chinchilla", "--form", help="Approach 3 form (chinchilla, kaplan_joint, ...)."),
    approach: int = typer.Option(3, "--approach", help="1 (curve envelope), 2 (IsoFLOP), 3 (joint fit)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples (e.g. 1000; 0 = none)."),
    holdout_top: int | None = typer.Option(None, "--holdout-top", help="Backtest: hold out the top k."),
    holdout_above: str | None = typer.Option(None, "--holdout-above", help="Backtest: hold out C >= this."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    level: float = typer.Option(0.95, "--level", help="Confidence level of the intervals."),
    drop_top_loss: int | None = typer.Option(None, "--drop-top-loss", help="Drop the k highest-loss runs."),
    drop: list[str] = typer.Option([], "--drop", help="Drop rows matching a rule, e.g. 'loss>5'."),
    exclude_col: str | None = typer.Option(None, "--exclude-col", help="Drop rows flagged true in COL."),
    where: list[str] = typer.Option([], "--where", help="Keep rows with COL=VALUE (repeatable)."),
    n_col: str | None = typer.Option(None, "--n-col", help="Column of N (parameters)."),
    d_col: str | None = typer.Option(None, "--d-col", help="Column of D (tokens)."),
    c_col: str | None = typer.Option(None, "--c-col", help="Column of C (FLOPs)."),
    loss_col: str | None = typer.Option(None, "--loss-col", help="Column of the loss."),
    budget_col: str | None = typer.Option(None, "--budget-col", help="Column of the IsoFLOP budget."),
    unique_col: str | None = typer.Option(None, "--unique-col", help="Column of unique tokens U "
                                          "(for --form data_constrained)."),
    run_id_col: list[str] = typer.Option([], "--run-id-col", help="Column(s) naming a run (Approach 1)."),
    loss: str = typer.Option("huber", "--loss", help="Objective for Approach 3: huber, mse_log, mse."),
    delta: float = typer.Option(1e-3, "--delta", help="Huber delta (log residuals)."),
    skip_bad_budgets: bool = typer.Option(False, "--skip-bad-budgets", help="Approach 2: skip bad budgets."),
    keep_extrapolated: bool = typer.Option(False, "--keep-extrapolated",
                                           help="Approach 2: keep budgets whose "
                                           "vertex lies outside their trained sizes (excluded by default)."),
    keep_duplicates: bool = typer.Option(False, "--keep-duplicates", help="Keep exact duplicate rows "
                                         "(dropped by default, with a note)."),
    at: list[str] = typer.Option([], "--at", help="Report N_opt/D_opt at these budgets."),
    out: Path | None = typer.Option(None, "--out", help="Write the fit as JSON (usable by predict --law)."),
    calibrate: bool = typer.Option(False, "--calibrate", help="With --bootstrap: widen prediction intervals "
                                   "by a nested backtest on the data (docs/calibration.md)."),
    base_law: str | None = typer.Option(None, "--base-law", help="With --form data_constrained: hold this "
                                        "base law (preset or fit JSON) and fit only R_D*, R_N*."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Fit a scaling law (Approach 1, 2 or 3) to a runs table, with bootstrap CIs and a backtest."""
    from scalinglab.laws.lawfit import fit_runs
    from scalinglab.laws.runs import load_runs_csv
    from scalinglab.units import parse_flops

    _check_options(approach, bootstrap, level, holdout_top)
    _check_base_law(base_law, form, approach, bootstrap, holdout_top, holdout_above, at, loss, calibrate)
    computes = [_positive_flops(c) for c in at]
    runs = load_runs_csv(runs_csv, n_col=n_col, d_col=d_col, c_col=c_col, loss_col=loss_col,
                         budget_col=budget_col, run_id_col=run_id_col or None, exclude_col=exclude_col,
                         where=_parse_where(where), drop_top_loss=drop_top_loss, drop_where=drop or None,
                         unique_col=unique_col, keep_duplicates=keep_duplicates)
    if base_law is not None:
        from scalinglab.cli.fit_rstar import run_frozen_base

        run_frozen_base(runs, base_law, level=level, delta=delta, out=out, as_json=as_json)
        return
    # notes and the bootstrap line arrive after the fit (and backtest) succeeded, so a bad-input error stays
    # alone
    result = fit_runs(runs, approach=approach, form=form, n_resamples=bootstrap, seed=seed, level=level,
                      holdout_top=holdout_top,
                      compute_threshold=None if holdout_above is None else parse_flops(holdout_above),
                      skip_bad_budgets=skip_bad_budgets, keep_extrapolated=keep_extrapolated, at=computes,
                      progress=_progress, calibrate=calibrate,
                      loss=loss, delta=delta)
    payload = result.to_dict()
    _print_warnings(result.warnings)  # on stderr in text and --json mode alike
    if out is not None:
        result.save(out)
        info(f"wrote {out}")
    if as_json:
        print_json(payload)
    else:
        _print_fit(payload)


def _check_options(approach: int, bootstrap: int, level: float, holdout_top: int | None) -> None:
    """Refuse bad option values before any work (and before any log line)."""
    from scalinglab.errors import ConfigError

    if approach not in (1, 2, 3):
        raise ConfigError(f"--approach {approach}; choose 1, 2 or 3")
    if bootstrap and approach == 1:
        raise ConfigError("--bootstrap is available for approaches 2 and 3; drop it for --approach 1")
    if bootstrap and bootstrap < 10:
        raise ConfigError(f"--bootstrap {bootstrap}; give 0 (none) or at least 10 resamples (1000 is usual)")
    if not 0 < level < 1:
        raise ConfigError(f"--level {level}; give a confidence level between 0 and 1, e.g. 0.95")
    if holdout_top is not None and holdout_top < 1:
        raise ConfigError(f"--holdout-top {holdout_top}; give the number of top budgets to hold out (>= 1)")


def _check_base_law(base_law, form, approach, bootstrap, holdout_top, holdout_above, at, loss,
                    calibrate=False) -> None:
    """--base-law is the second stage of Muennighoff et al.'s fit: only with --form data_constrained."""
    from scalinglab.errors import ConfigError

    if base_law is None:
        return
    if form != "data_constrained" or approach != 3:
        raise ConfigError(f"--base-law holds a base law for --form data_constrained (approach 3); got --form "
                          f"{form} --approach {approach}")
    if loss != "huber":
        raise ConfigError(f"--loss {loss} with --base-law; the R* fit uses Muennighoff et al.'s Huber "
                          "objective (drop --loss)")
    extra = [flag for flag, v in (("--bootstrap", bootstrap), ("--holdout-top", holdout_top),
                                  ("--holdout-above", holdout_above), ("--at", at),
                                  ("--calibrate", calibrate)) if v]
    if extra:
        raise ConfigError(f"{', '.join(extra)} not available with --base-law (its intervals are profile "
                          "likelihood); drop them")


def _positive_flops(text: str) -> float:
    from scalinglab.errors import ConfigError
    from scalinglab.units import parse_flops

    c = parse_flops(text)
    if not (math.isfinite(c) and c > 0):
        raise ConfigError(f"--at {text!r}: a compute budget must be a positive number of FLOPs, e.g. 1e24")
    return c


def _parse_where(items: list[str]) -> dict[str, str]:
    from scalinglab.errors import ConfigError

    out = {}
    for item in items:
        col, sep, value = item.partition("=")
        if not sep or not col.strip():
            raise ConfigError(f"--where {item!r}: write COLUMN=VALUE, e.g. --where experiment=llama_3")
        out[col.strip()] = value.strip()
    return out


def _progress(msg: str) -> None:
    """Data notes (dim) and the bootstrap line from ``fit_runs``, on stderr, with flags for parameter
    names."""
    from scalinglab.cli.flags import to_cli

    info(msg if msg.startswith(("bootstrap:", "calibrate:")) else f"[dim]{to_cli(msg)}[/dim]")


def _print_warnings(warnings) -> None:
    """Every warning the JSON carries, on stderr in either mode (data stay alone on stdout)."""
    from scalinglab.cli.flags import to_cli

    for w in warnings:
        info(f"[yellow]warning:[/yellow] {to_cli(w)}")


# ------------------------------------------------------------------------------------------------ printing
def _table(title: str, columns: list[str]):
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for c in columns:
        left = c in ("parameter", "name", "source", "description", "law")
        table.add_column(c, justify="left" if left else "right")
    return table


def _g(x, digits: int = 5) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _count(x) -> str:
    """Parameters or tokens the way people write them (72.2B, 1.33T)."""
    from scalinglab.units import format_count

    return "-" if x is None else format_count(x)


_ALLOC_COLUMNS = ["C (FLOPs)", "N_opt (params)", "D_opt (tokens)", "D/N", "loss"]


def _print_fit(payload: dict) -> None:
    console = stdout_console()
    fit, boot = payload["fit"], payload.get("bootstrap")
    console.print(f"Approach {payload['approach']} on {payload['n_points']} points from {payload['source']}")
    if "params" in fit:  # a parametric law (Approach 3)
        _print_params(console, fit, boot)
    if "n_law" in fit:  # power laws for N_opt, D_opt (Approaches 1 and 2)
        _print_power_laws(console, fit, boot)
    if "vertices" in fit:  # IsoFLOP parabolas (Approach 2)
        _print_vertices(console, fit["vertices"])
    _print_allocation(console, payload)
    if "calibration" in payload:
        cal = payload["calibration"]
        ks = ", ".join(f"{k} ({round(100 * float(lv))}%)" for lv, k in
                       ((lv, f"{v:.4f}") for lv, v in cal["extra_sd_per_decade"].items()))
        console.print(f"Calibration (nested backtest, holdout by {cal['holdout']}): extrapolation scatter "
                      f"{ks} in log-loss per decade beyond C = {cal['max_compute_flops']:.3g}")
    if "backtest" in payload:
        bt = payload["backtest"]
        m = bt["metrics"]
        console.print(f"Backtest: {bt['split']}; {bt['n_train']} fitted, {bt['n_test']} held out; "
                      f"mean |rel err| {m['mean_abs_rel_error']:.3%}, max {m['max_abs_rel_error']:.3%}")


def _print_vertices(console, vertices) -> None:
    t = _table("Vertices per IsoFLOP budget",
               ["budget C (FLOPs)", "N* (params)", "N* 95% (delta)", "D* (tokens)", "L*", "points"])
    for v in vertices:
        lo, hi = v["n_opt_lo95"], v["n_opt_hi95"]
        finite = all(isinstance(x, float) and math.isfinite(x) for x in (lo, hi))  # nan with 3 points
        ci = f"{_count(lo)} – {_count(hi)}" if finite else "-"
        t.add_row(_g(v["budget"], 3), _count(v["n_opt"]), ci,
                  _count(v["d_opt"]), _g(v["loss_opt"], 4), str(v["n_points"]))
    console.print(t)


def _print_params(console, fit, boot):
    ci_col = [f"{round(boot['level'] * 100)}% CI (bootstrap)"] if boot else []
    cols = ["parameter", "value", "std err", *ci_col]
    title = f"{fit['form']}: {fit['formula']}  (objective {fit['objective']:.7g}, status {fit['status']})"
    t = _table(title, cols)
    names = list(fit["params"]) + (["a", "b"] if boot and "a" in boot["intervals"] else [])
    for p in names:
        value = fit["params"].get(p, boot["point"].get(p) if boot else None)
        se = fit["stderr"].get(p)
        row = [p, _g(value), _g(se if isinstance(se, float) else None, 3)]
        if boot:
            lo, hi = boot["intervals"].get(p, (None, None))
            row.append(f"{_g(lo)} – {_g(hi)}")
        t.add_row(*row)
    console.print(t)


def _print_power_laws(console, fit, boot):
    t = _table("Compute-optimal power laws", ["law", "coefficient", "exponent", "std err"]
               + ([f"exponent {round(100 * boot['level'])}% CI (bootstrap)"] if boot else []))
    for key, name, var in (("n_law", "N_opt = k C^a", "a"), ("d_law", "D_opt = k C^b", "b")):
        law = fit[key]
        row = [name, _g(law["coef"], 4), _g(law["exponent"], 4), _g(law["exponent_se"], 3)]
        if boot:
            lo, hi = boot["intervals"][var]
            row.append(f"{_g(lo, 4)} – {_g(hi, 4)}")
        t.add_row(*row)
    console.print(t)


def _level(payload) -> float:
    return (payload.get("bootstrap") or {}).get("level", 0.95)


def _print_allocation(console, payload):
    if not payload["allocation"]:
        return
    boot_at = {a["compute_flops"]: a for a in (payload.get("bootstrap") or {}).get("at_compute", [])}
    t = _table("Compute-optimal allocation", [*_ALLOC_COLUMNS, f"N_opt {round(100 * _level(payload))}% CI"])
    for a in payload["allocation"]:
        ci = boot_at.get(a["compute_flops"], {}).get("n_opt")
        t.add_row(_g(a["compute_flops"], 3), _count(a["n_params"]), _count(a["n_tokens"]),
                  _g(a["tokens_per_param"], 3), _g(a["loss"], 4),
                  f"{_count(ci['lo'])} – {_count(ci['hi'])}" if ci else "-")
    console.print(t)


# --------------------------------------------------------------------------------------------------- predict
def predict_command(
    law: str = typer.Option(..., "--law", help="Preset (see `scalinglab laws`) or a `fit --out` JSON."),
    compute: list[str] = typer.Option([], "--compute", help="Compute budget, e.g. 1e24 (repeatable)."),
    params: str | None = typer.Option(None, "--params", help="Parameters N, e.g. 7B."),
    tokens: str | None = typer.Option(None, "--tokens", help="Tokens D, e.g. 2T."),
    level: str | None = typer.Option(None, "--level", help="Interval levels of a bootstrapped fit, e.g. "
                                     "0.8,0.95 (the default when the law has samples)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Compute-optimal allocation at a budget (--compute) and/or the loss at (--params, --tokens); a
    bootstrapped fit adds confidence (law) and prediction (one new run) intervals."""
    from scalinglab.errors import ConfigError
    from scalinglab.laws.presets import load_law
    from scalinglab.units import parse_count, parse_flops

    if not compute and params is None and tokens is None:
        raise ConfigError("give --compute C, or --params N --tokens D (or both)")
    given = (("n_params", params), ("n_tokens", tokens))
    sizes = {key: parse_count(text) for key, text in given if text is not None}
    if not all(math.isfinite(x) and x > 0 for x in sizes.values()):
        flags_given = (("--params", params), ("--tokens", tokens))
        shown = " ".join(f"{flag} {text!r}" for flag, text in flags_given if text)
        raise ConfigError(f"{shown}: sizes must be positive counts, e.g. 7B, 2T")
    model = load_law(law)
    out: dict = {"law": model.name, "source": model.source}
    out["allocation"] = [model.optimal_allocation(parse_flops(c)).to_dict() for c in compute]
    if sizes:  # a law with single-variable components (Kaplan's L(N)) answers from N or D alone
        n, d = sizes.get("n_params"), sizes.get("n_tokens")
        loss_nd = float(model.predict_loss(n_params=n, n_tokens=d))
        out["loss"] = {"n_params": n, "n_tokens": d,
                       "compute_flops": None if n is None or d is None else 6 * n * d,
                       "loss": loss_nd}
    _add_intervals(out, model, [parse_flops(c) for c in compute], level)
    if as_json:
        print_json(out)
        return
    console = stdout_console()
    console.print(f"law: {out['law']}  ({out['source']})")
    if out["allocation"]:
        t = _table("Compute-optimal allocation", _ALLOC_COLUMNS)
        for a in out["allocation"]:
            t.add_row(_g(a["compute_flops"], 3), _count(a["n_params"]), _count(a["n_tokens"]),
                      _g(a["tokens_per_param"], 3), _g(a["loss"], 4))
        console.print(t)
    if "loss" in out:
        p = out["loss"]
        given = [f"{sym} = {_count(p[key])} {unit}" for sym, key, unit in
                 (("N", "n_params", "params"), ("D", "n_tokens", "tokens")) if p[key] is not None]
        flops = "" if p["compute_flops"] is None else f"  (C = 6ND = {p['compute_flops']:.3g} FLOPs)"
        console.print(f"L({', '.join(given)}) = {p['loss']:.5g}{flops}")
        if "intervals" in p:
            _print_loss_intervals(console, "  ", p["intervals"])
    for a in out.get("intervals_at_compute", []):
        _print_compute_intervals(console, a)


def _add_intervals(out: dict, model, computes: list[float], level: str | None) -> None:
    """Intervals of a bootstrapped law into ``out`` (the JSON of predict); nothing for a law without
    samples unless --level asked for them (then the one-line error says why there are none)."""
    from scalinglab.laws.intervals import (
        DEFAULT_LEVELS,
        compute_intervals,
        has_intervals,
        loss_intervals,
        parse_levels,
    )

    if level is None and not has_intervals(model):
        return
    levels = DEFAULT_LEVELS if level is None else parse_levels(level)
    out["intervals_at_compute"] = [compute_intervals(model, c, levels=levels) for c in computes]
    p = out.get("loss")
    if p is not None and p["n_params"] is not None and p["n_tokens"] is not None \
            and model.chinchilla_params() is not None:
        p["intervals"] = loss_intervals(model, p["n_params"], p["n_tokens"], levels=levels).to_dict()


def _span(pair, key: str, fmt) -> str:
    lo, hi = pair[key]
    return f"{fmt(lo)} – {fmt(hi)}"


def _print_loss_intervals(console, indent: str, li: dict) -> None:
    def f(x):
        return f"{x:.4f}"

    for pair in li["intervals"]:
        pi = f"; prediction interval {_span(pair, 'pi', f)}" if "pi" in pair else ""
        if "pi_calibrated" in pair:
            pi += f"; calibrated {_span(pair, 'pi_calibrated', f)}"
        console.print(f"{indent}{round(100 * pair['level'])}%: confidence interval {_span(pair, 'ci', f)}"
                      f"{pi}")
    if li.get("residual_sd") is not None:
        console.print(f"{indent}(prediction interval adds run-to-run scatter, sd {li['residual_sd']:.4f} "
                      "in log-loss, from the fit's residuals)")


def _print_compute_intervals(console, a: dict) -> None:
    console.print(f"At C = {a['compute_flops']:.3g} FLOPs:")
    for key, name in (("n_params", "N_opt"), ("n_tokens", "D_opt")):
        cis = ", ".join(f"{round(100 * p['level'])}% CI {_span(p, 'ci', _count)}"
                        for p in a[key]["intervals"])
        console.print(f"  {name} = {_count(a[key]['point'])}: {cis}")
    if "loss" in a:
        console.print(f"  L* = {a['loss']['point']:.4f}")
        _print_loss_intervals(console, "  ", a["loss"])


# ------------------------------------------------------------------------------------------------------ laws
def laws_command(as_json: bool = JSON_OPTION) -> None:
    """List the preset scaling laws with their sources; the default law is marked."""
    from scalinglab.laws.presets import DEFAULT_LAW, list_laws

    rows = list_laws()
    if as_json:
        print_json([{"name": n, "description": d, "source": s,
                     "default": n == DEFAULT_LAW} for n, d, s in rows])
        return
    t = _table("Preset scaling laws", ["name", "description", "source"])
    for n, d, s in rows:
        t.add_row(f"{n} (default)" if n == DEFAULT_LAW else n, d, s)
    stdout_console().print(t)
