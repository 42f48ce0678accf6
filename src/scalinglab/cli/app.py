"""The typer application and the error contract: data on stdout, logs on stderr, exit 0 ok / 1 failure
(diverged) / 2 bad input / 3 crashed (an unexpected exception: one line, the traceback in a log file). Each
command group lives in its own module with a ``register(app)`` function; library imports happen inside the
commands so that ``scalinglab fit`` never imports torch."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

from scalinglab.errors import ScalingLabError

# One module per command group (see ../shared/STYLE.md); each exposes register(app).
COMMAND_MODULES = ("fit", "model", "data", "train", "plan", "sweep", "report", "demo", "downstream",
                   "forecast", "backtest", "returns", "history", "design", "eval", "export")

app = typer.Typer(
    name="scalinglab",
    help="Train GPT families, sweep IsoFLOP grids, fit scaling laws, plan runs, report. --json for scripts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v",
                                       help="Log library progress to stderr.")) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


for _name in COMMAND_MODULES:
    importlib.import_module(f"scalinglab.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning library errors into one line and exit code 2."""
    try:
        _main(argv)
    except SystemExit as exc:
        _end_distributed(exc.code)
        raise
    _end_distributed(0)


def _end_distributed(code: object) -> None:
    """Under torchrun, once the run has destroyed its process group, end the process with ``code`` without
    the interpreter's finalization (see :func:`scalinglab.parallel.mesh.exit_process`); otherwise return."""
    mesh = sys.modules.get("scalinglab.parallel.mesh")  # never imported (nor torch) by a plain command
    if mesh is None or not mesh.TORN_DOWN:
        return
    if isinstance(code, str):  # SystemExit("message"): what the interpreter would print, and exit 1
        print(code, file=sys.stderr)
        code = 1
    mesh.exit_process(code if isinstance(code, int) else 0)


def _main(argv: list[str] | None) -> None:
    try:
        # In non-standalone mode click returns the code of a `typer.Exit(n)` instead of exiting with it.
        code = app(args=argv, standalone_mode=False)
    except ScalingLabError as err:
        from scalinglab.cli.flags import to_cli

        # library errors name Python parameters; the user typed flags. A crashed run is 3, bad input 2.
        _fail(to_cli(str(err)), getattr(err, "exit_code", 2))
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except typer.Exit as ex:  # raised by commands that choose their own exit code
        sys.exit(ex.exit_code)
    # usage errors (bad option values, unknown flags) come here in non-standalone mode
    except Exception as err:
        # Duck-typed: recent typer vendors its own click, so `click.ClickException` is not the class it
        # raises.
        exit_code, message = getattr(err, "exit_code", None), getattr(err, "format_message", None)
        if isinstance(exit_code, int) and callable(message):
            _fail(message(), exit_code)
        _fail(_crash_line(err), 3)
    if isinstance(code, int) and code:
        sys.exit(code)


def _crash_line(err: BaseException) -> str:
    """One line for an unexpected exception; its traceback goes to a log file the line names."""
    import tempfile
    import traceback

    text = str(err).strip().splitlines()
    line = f"crashed: {type(err).__name__}: {text[0] if text else '(no message)'}"
    try:
        fd, path = tempfile.mkstemp(prefix="scalinglab-crash-", suffix=".log")
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write("".join(traceback.format_exception(err)))
        return f"{line} (traceback in {path})"
    except OSError:
        return line


def _fail(message: str, code: int) -> None:
    from rich.console import Console
    from rich.markup import escape

    # The message is escaped: square brackets in it ("[1, 2]") are text, not rich markup.
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
