"""The entry point: argv fix-ups (list flags, the pruning fork's aliases), running the command,
and turning every failure into one line and an exit code."""
from __future__ import annotations

import sys

import typer

from hgx import options as hopts
from hgx.cli.app import _err, app
from hgx.errors import HgxError

# -- entry point --------------------------------------------------------------------------------
LIST_FLAGS = {o.flag for o in hopts.SCHEMA if o.type is list} | {"--scales", "--amounts"}
# flags whose several values are words: `hgx prune --levels stem 1 2`
WORD_FLAGS = {"--levels": lambda v: v.isdigit() or v.lower() in ("stem", "heads", "hg", "all")}


# The hourglass-pruning fork's names for the residual block's widths: inner (N), outer (M).
ALIASES = {"--N": "--mid", "--M": "--features"}


def _join_list_flags(argv: list[str]) -> list[str]:
    """`--schedule 60 90` -> `--schedule "60 90"` (click options take one value), `--levels
    stem 1` too; aliases."""
    out, i = [], 0
    while i < len(argv):
        out.append(ALIASES.get(argv[i], argv[i]))
        if argv[i] in LIST_FLAGS or argv[i] in WORD_FLAGS:
            takes = WORD_FLAGS.get(argv[i], _is_number)
            values = []
            while i + 1 < len(argv) and takes(argv[i + 1]):
                values.append(argv[i + 1])
                i += 1
            if values:
                out.append(" ".join(values))
        i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = _join_list_flags(list(sys.argv[1:] if argv is None else argv))
    if not argv:  # bare `hgx`: the help, not an error
        argv = ["--help"]
    debug = "--debug" in argv
    command = typer.main.get_command(app)
    try:
        code = command.main(argv, prog_name="hgx", standalone_mode=False)
    except HgxError as err:
        if debug:
            raise
        # raised in a DataLoader worker, it comes back re-raised with the worker's traceback
        _err(f"hgx: error: {_wrapped_hgx_error(err) or _one_line(err)}")
        code = err.exit_code
    except KeyboardInterrupt as stop:
        from hgx.workflow import EXIT_SIGNAL

        _err("hgx: interrupted")
        code = EXIT_SIGNAL.get(getattr(stop, "signum", 2), 130)
    except OSError as err:  # the filesystem said no: name the path and what to do
        if debug:
            raise
        _err(f"hgx: error: {_os_error(err)}")
        code = 1
    except Exception as err:  # a bug, not a user error: one line unless --debug
        if _is_click(err, "NoArgsIsHelpError"):  # `hgx data`: that group's help
            print(err.ctx.get_help())
            return 0
        if _is_click(err, "UsageError"):  # typer may vendor its own click: match by name
            ctx = getattr(err, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx else ""
            _err(f"hgx: error: {_one_line(err.format_message())}{hint}")
            return 2
        if _is_click(err, "Abort"):  # click turns KeyboardInterrupt into Abort
            from hgx.workflow import EXIT_SIGNAL

            _err("hgx: interrupted")
            return EXIT_SIGNAL.get(getattr(err.__cause__, "signum", 2), 130)
        if debug:
            raise
        wrapped = _wrapped_hgx_error(err)
        if wrapped:
            _err(f"hgx: error: {wrapped}")
        else:
            _err(f"hgx: internal error: {type(err).__name__}: {err} (rerun with --debug for "
                 "the traceback)")
        code = 1
    return code if isinstance(code, int) else 0


def _os_error(err: OSError) -> str:
    where = err.filename if err.filename is not None else "a file"
    why = err.strerror or type(err).__name__
    if isinstance(err, PermissionError):
        fix = "check its permissions, or choose another --exp-dir / --out"
    elif err.errno == 28:  # ENOSPC
        fix = "free some disk space"
    elif isinstance(err, (FileExistsError, NotADirectoryError, IsADirectoryError)):
        fix = "a file and a directory are mixed up there; pass a directory (e.g. --exp-dir DIR)"
    else:
        fix = "check the path"
    return f"{where}: {why}; {fix}"


def _is_click(err: Exception, name: str) -> bool:
    return any(c.__name__ == name and "click" in c.__module__ for c in type(err).__mro__)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split("\n")).strip()


def _wrapped_hgx_error(err: Exception) -> str | None:
    """An HgxError raised in a DataLoader worker comes back wrapped with its traceback."""
    text = str(err)
    marker = "HgxError: "
    if marker in text:
        return text.rsplit(marker, 1)[1].strip().splitlines()[0]
    return None


def entry() -> None:
    sys.exit(main())
