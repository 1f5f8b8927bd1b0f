"""A run is safe from its first line: what is refused before anything is written (typed options,
architecture changes, the run options, the dataset, the experiments root, --load-model), the
signal handling of the set-up, and undoing what a command did when it fails before its first
snapshot.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.experiment import Experiment

EXIT_SIGNAL = {2: 130, 15: 143}  # SIGINT, SIGTERM


class Interrupted(KeyboardInterrupt):
    """A signal arrived while the command was still setting up (before the first step). A
    KeyboardInterrupt, so that no ``except Exception`` swallows it and loader workers stop
    quietly."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_abort_setup():
    """From the command's first line, SIGINT/SIGTERM abort the setup cleanly (an exception
    that unwinds: the lock is released, what the command created is removed); the training
    loop installs its own handlers (finish the step, snapshot) once it runs."""
    def abort(signum, _frame):
        raise Interrupted(signum)

    old = {sig: signal.signal(sig, abort) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


class Undo:
    """What a command created or changed, undone when it fails before training wrote its
    first snapshot: a directory it created is removed; files it changed get their old bytes
    back. Nothing else is ever touched."""

    def __init__(self, exp: Experiment, created: bool, files: tuple[str, ...] = ()):
        self.exp, self.created = exp, created
        self.first = exp.state().get("last_snapshot")
        self.saved = {name: (exp.path / name).read_bytes() if (exp.path / name).is_file()
                      else None for name in files}

    def trained(self) -> bool:
        return self.exp.state().get("last_snapshot") != self.first

    def undo(self) -> str:
        if self.created:
            shutil.rmtree(self.exp.path, ignore_errors=True)
            return f"{self.exp.name} removed (it had no snapshot of its own)"
        from hgx.files import atomic_write

        for name, data in self.saved.items():
            path = self.exp.path / name
            if data is None:
                path.unlink(missing_ok=True)
            else:
                atomic_write(path, data)
        return f"{self.exp.name} left as it was"


def _guarded(undo: Undo, run: Callable[[], "RunResult"]) -> "RunResult":
    """Run training; on a failure before its first snapshot, undo what the command did."""
    try:
        result = run()
    except Interrupted as stop:
        if undo.trained():
            raise
        what = undo.undo()
        return RunResult(undo.exp.name, EXIT_SIGNAL.get(stop.signum, 130),
                         f"{undo.exp.name}: interrupted while setting up; {what}")
    except BaseException:
        if not undo.trained():
            undo.undo()
        raise
    if result.exit_code == 1 and not undo.trained():  # e.g. a non-finite loss in epoch 1
        result.message += f"; {undo.undo()}"
    return result


@dataclass
class RunResult:
    name: str
    exit_code: int = 0
    message: str = ""


def typed_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate the flags the user typed (None = not typed)."""
    return {k: hopts.coerce(k, v) for k, v in raw.items() if v is not None}


def _refuse_arch_change(stored: dict, typed: dict, what: str) -> None:
    for key, value in typed.items():
        if hopts.BY_NAME[key].arch and stored.get(key) != value:
            flag = hopts.BY_NAME[key].flag
            raise UsageError(f"{flag} cannot change on {what}: the snapshot holds a model with "
                             f"{key}={stored.get(key)}; start a new experiment with `hgx new ... "
                             f"--load-model` instead")


def _check_data(opts, log) -> None:
    """Fail before creating anything when the dataset is not there: its annotation files, its
    image folder, and the first image of each split decode."""
    from hgx.data import open_split

    for split in ("train", "valid"):
        ds = open_split(opts, split, log=log)
        if ds.cache is None:
            if not ds.image_dir.is_dir():
                raise HgxError(f"image folder {ds.image_dir} not found; put the dataset's images "
                               f"there (or pass --data-dir DIR holding annot/ and images/)")
            if len(ds):
                ds.load_image(0)


def _load_model(opts, typed: dict):
    """--load-model: read the checkpoint and take its architecture for every architecture
    option the user did not type. Returns (options, state_dict)."""
    if not opts.load_model:
        return opts, None
    from hgx.data import skeleton_for
    from hgx.models import build_model
    from hgx.models.loading import check_compatible, load_any_checkpoint, with_arch

    path = Path(opts.load_model).expanduser()
    if not path.is_file():
        raise HgxError(f"--load-model {path}: file not found")
    loaded = load_any_checkpoint(path)
    opts = hopts.Options(**with_arch(hopts.as_dict(opts), loaded.arch, keep=typed))
    model = build_model(opts, skeleton_for(opts).num_joints)
    check_compatible(model, loaded.state_dict, str(path))
    return opts, loaded.state_dict


def _check_run(opts) -> None:
    """Run options that cannot work here: refused before anything is written."""
    from hgx.engine.device import select_device
    from hgx.models import check_block_widths, check_resolution

    check_resolution(opts)
    check_block_widths(opts)
    if opts.nproc * opts.nnodes == 1:
        select_device(opts.device)
    if opts.sync_bn and opts.nproc * opts.nnodes > 1:
        import torch

        if opts.device == "cpu" or not torch.cuda.is_available():
            raise UsageError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm runs on GPUs only); "
                             "drop it on CPU")
    if opts.node_rank >= opts.nnodes:
        raise UsageError(f"--node-rank {opts.node_rank} must be below --nnodes {opts.nnodes}")


def check_root(root: Path) -> Path:
    """The experiments root must be a directory this user can write (created if missing)."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"experiments root {root} is a file, not a directory; pass --exp-dir "
                         "DIR (or set $HGX_EXP_DIR) to a directory")
    probe = root if root.exists() else next((p for p in root.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise HgxError(f"experiments root {root} is not writable ({probe} does not let this user "
                       "create files); choose another --exp-dir or fix its permissions")
    return root
