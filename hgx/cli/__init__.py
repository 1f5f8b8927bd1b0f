"""The `hgx` command line: thin Typer commands, one module per group (``train``: new, continue,
branch; ``prune``: prune; ``inspect``: list, show, diff; ``eval``: eval, finalize; ``compare``:
compare, tree; ``data``: data synth/cache/prepare), on the application of ``app``; ``main``
runs them. Torch is imported only when a command needs it, so `hgx --help` stays instant.
"""
from __future__ import annotations

import importlib

from hgx.cli.app import app
from hgx.cli.main import entry, main

__all__ = ["app", "entry", "main"]

# each module registers its commands on import; this order is the order of `hgx --help`
for _group in ("train", "prune", "inspect", "eval", "compare", "data"):
    importlib.import_module(f"hgx.cli.{_group}")
