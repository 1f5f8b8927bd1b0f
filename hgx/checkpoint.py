"""Snapshots: written atomically, read with checks, and found again after a crash.

A snapshot is a ``torch.save`` dict: ``format`` = "hgx-snapshot", ``model`` (state_dict),
``optimizer``, ``epoch`` (epochs completed), ``iteration`` (iterations done in the next epoch,
0 at an epoch end), ``global_step``, ``options``, ``rng`` and ``best_acc``.
"""
from __future__ import annotations

import io
import os
import pickle
import warnings
import zipfile
from pathlib import Path

import torch

from hgx.errors import HgxError, UsageError
from hgx.experiment import Experiment
from hgx.files import fsync_dir

FORMAT = "hgx-snapshot"


def save(path: Path, payload: dict) -> None:
    """Serialise in memory, write to a temporary file beside ``path``, fsync, rename.

    A full disk or a kill at any instant leaves the previous file intact and no file that
    looks like a snapshot but is not one.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save({"format": FORMAT, **payload}, buf)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(buf.getbuffer())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise HgxError(f"could not write snapshot {path}: {err.strerror or err}; free some disk "
                       "space, then `hgx continue` resumes from the previous snapshot") from None
    fsync_dir(path.parent)


def load(path: Path) -> dict:
    """A snapshot, checked; a corrupt or foreign file raises HgxError naming it."""
    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(4)
        if not head:
            what = "is empty"
        elif head == b"PK\x03\x04":  # a zip archive's start without its end
            what = "is truncated (the start of torch's zip archive, without its end)"
        else:
            what = "is not a PyTorch file (hgx writes snapshots as torch's zip archives)"
        raise HgxError(f"snapshot {path} {what}")
    try:
        # weights only: unpickling a file can run code, and a snapshot holds tensors and plain
        # numbers alone; torch's warnings about foreign files stay out of the one-line error
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise HgxError(f"snapshot {path} is missing") from None
    except pickle.UnpicklingError as err:
        if "Weights only load failed" in str(err) or "Unsupported global" in str(err):
            raise HgxError(f"{path} holds Python objects besides tensors and numbers, which an "
                           "hgx snapshot never does; it is not loaded (pass a trusted "
                           "checkpoint with --load-model to import it)") from None
        raise HgxError(f"snapshot {path} is not a PyTorch file (corrupt, truncated or another "
                       "kind of file)") from None
    except Exception as err:  # torch raises many kinds on truncated or foreign files
        raise HgxError(f"snapshot {path} is corrupt or truncated ({type(err).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "model" not in data:
        raise HgxError(f"{path} is not an hgx snapshot")
    return data


def latest_good(exp: Experiment, warn=print) -> tuple[Path | None, dict | None]:
    """The newest loadable snapshot: the one state.json names, else the newest intact one.

    Falling back says so through ``warn``.
    """
    state = exp.state()
    named = exp.resolve_path(state.get("last_snapshot"))
    candidates = ([named] if named else []) + sorted(
        (p for p in exp.snapshot_files() if p != named),
        key=lambda p: p.name, reverse=True)
    for i, path in enumerate(candidates):
        try:
            data = load(path)
        except HgxError as err:
            warn(f"warning: {err}; trying the previous snapshot")
            continue
        if i > 0 and named is not None:
            warn(f"warning: resuming from {path.name} instead of {named.name}")
        return path, data
    return None, None


def select(exp: Experiment, which: str = "last", warn=print,
           best_falls_back: bool = False) -> tuple[Path, dict]:
    """One snapshot of ``exp``, loaded: ``best``, ``last`` (the newest loadable, falling back
    past damaged ones), an epoch number (a kept end-of-epoch snapshot) or a path to a file.
    ``best_falls_back``: take the latest when no best exists yet."""
    which = str(which)
    if which == "best":
        path = exp.resolve_path(exp.state().get("best_snapshot"))
        if path is not None and path.is_file():
            return path, load(path)
        if not best_falls_back:
            raise HgxError(f"{exp.name} has no best snapshot yet; use its latest (last)")
        which = "last"
    if which == "last":
        path, data = latest_good(exp, warn=warn)
        if data is None:
            raise HgxError(f"{exp.name} has no snapshot yet; train it first (`hgx continue "
                           f"{exp.name}`)")
        return path, data
    if which.isdigit():
        path = exp.snapshot_path(int(which))
        if not path.is_file():
            kept = ", ".join(map(str, exp.kept_epochs())) or "none"
            raise HgxError(f"{exp.name} has no snapshot of epoch {int(which)}; kept epochs: "
                           f"{kept} (or best, last)")
        return path, load(path)
    path = Path(which)
    if not path.is_file():
        raise UsageError(f"snapshot {which!r}: expected best, last, an epoch number or a "
                         "snapshot file")
    return path, load(path)
