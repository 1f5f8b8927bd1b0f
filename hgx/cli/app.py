"""The `hgx` Typer application and what every command module shares: the option flags derived
from the schema, reporting a result, the console. Torch is imported only when needed.

Every experiment option of ``hgx.options.SCHEMA`` becomes a flag of new/continue/branch; a flag
left out is not "typed" and so never overrides the parent experiment's value.
"""
from __future__ import annotations

import inspect
import sys
from typing import Optional

import typer
from rich.console import Console

from hgx import __version__
from hgx import options as hopts

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Train, continue, branch and evaluate stacked-hourglass pose networks.")
data_app = typer.Typer(no_args_is_help=True, help="Datasets: generate the synthetic set, "
                       "convert public datasets into pose-hg-train's layout.")
prepare_app = typer.Typer(no_args_is_help=True, help="Convert a dataset's release files into "
                          "annot/{train,valid,test}.h5 (default --out data/<dataset>).")
app.add_typer(data_app, name="data")
data_app.add_typer(prepare_app, name="prepare")
console = Console() if sys.stdout.isatty() else Console(width=160)
STATE = {"debug": False}

ExpDir = typer.Option(None, "--exp-dir", help="Experiments root (default $HGX_EXP_DIR or ./exp).")


def with_schema_options(func):
    """Append one `--flag` per schema option (default None = not typed) to a command."""
    sig = inspect.signature(func)
    params = [p for p in sig.parameters.values() if p.kind != p.VAR_KEYWORD]
    for opt in hopts.SCHEMA:
        kind = "list" if opt.type is list else opt.type.__name__
        extra = f" [{'|'.join(opt.choices)}]" if opt.choices else ""
        default = " ".join(map(str, opt.default)) if opt.type is list else opt.default
        if opt.type is bool:
            params.append(inspect.Parameter(
                opt.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[bool],
                default=typer.Option(None, f"{opt.flag}/--no-{opt.flag[2:]}",
                                     help=f"{opt.help} (default: {default})",
                                     rich_help_panel=opt.group)))
            continue
        params.append(inspect.Parameter(
            opt.name, inspect.Parameter.KEYWORD_ONLY, annotation=Optional[str],
            default=typer.Option(None, opt.flag, metavar=kind.upper(),
                                 help=f"{opt.help}{extra} (default: {default!s})",
                                 rich_help_panel=opt.group)))
    func.__signature__ = sig.replace(parameters=params)
    return func


def _split(kwargs: dict) -> dict:
    return {o.name: kwargs.pop(o.name) for o in hopts.SCHEMA if o.name in kwargs}


def _report(result) -> None:
    if result.message:
        (console.print if result.exit_code == 0 else _err)(result.message)
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _print_version(value: bool) -> None:
    if value:
        print(f"hgx {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
          version: bool = typer.Option(False, "--version", help="Print the version.",
                                       is_eager=True, callback=_print_version)):
    STATE["debug"] = debug
