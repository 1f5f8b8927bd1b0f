"""Snapshots: written atomically, read with checks, and found again after a crash.

A snapshot is a ``torch.save`` dict: ``format`` = "hgx-snapshot", ``model`` (state_dict),
``optimizer``, ``epoch`` (epochs completed), ``iteration`` (iterations done in the next epoch,
0 at an epoch end), ``global_step``, ``options``, ``rng`` and ``best_acc``.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import torch

from hgx.errors import HgxError
from hgx.experiment import Experiment, _fsync_dir

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
    _fsync_dir(path.parent)


def load(path: Path) -> dict:
    """A snapshot, checked; a corrupt or foreign file raises HgxError naming it."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise HgxError(f"snapshot {path} is missing") from None
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
