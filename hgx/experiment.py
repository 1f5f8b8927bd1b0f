"""The experiment directory: create, lock, lineage, history, snapshots and logs.

exp/<name>/
    options.yaml        fully resolved options (snake_case keys)
    experiment.yaml     name, creation time, lineage (parent, epoch branched from)
    history.jsonl       one JSON object per invocation (command, overrides, time, version, commit)
    state.json          progress pointer: epochs done, latest and best snapshot, best accuracy
    train.log           TSV, named header, one row per epoch
    valid.log           TSV, named header, one row per epoch
    snapshots/          epoch-NNNN.pt (latest, every --snapshot epochs), best.pt
    lock                present while a process trains it (pid, host, heartbeat)

Every file is written atomically (temporary file in the same directory, fsync, rename), and the
pointer in state.json changes only after the snapshot it names is safely on disk.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgx import __version__
from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.files import atomic_write, format_tsv, now, read_tsv
from hgx.lock import _pid_alive, lock_is_stale, read_lock

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
TRAIN_COLUMNS = ("epoch", "iters", "loss", "acc", "lr", "seconds", "img_per_s")
VALID_COLUMNS = ("epoch", "loss", "acc", "pckh", "seconds")


def exp_root(explicit: str | os.PathLike | None = None) -> Path:
    """--exp-dir, else $HGX_EXP_DIR, else ./exp."""
    return Path(explicit or os.environ.get("HGX_EXP_DIR") or "exp")


def check_name(name: str) -> str:
    if not name or not NAME_RE.match(name) or ".." in name or len(name) > 100:
        raise UsageError(f"invalid experiment name {name!r}: use letters, digits, '.', '_', "
                         "'-' or '+', starting with a letter or digit (no '/' or '..')")
    return name


def generate_name(root: Path) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    while True:
        name = f"exp-{stamp}-{secrets.token_hex(2)}"
        if not (root / name).exists():
            return name


def git_commit() -> str | None:
    """The commit of the hgx source tree, when it is a git checkout."""
    src = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True, timeout=5).stdout.strip()
    return out.stdout.strip() + ("-dirty" if dirty else "")


class _ListsOnOneLine(hopts.yaml.SafeDumper):
    """YAML with each list of numbers on one line (a pruned branch's widths, per block)."""


_ListsOnOneLine.add_representer(list, lambda d, v: d.represent_sequence(
    "tag:yaml.org,2002:seq", v, flow_style=True))


# -- the experiment -----------------------------------------------------------------------------
@dataclass
class Experiment:
    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    # files
    @property
    def options_file(self) -> Path:
        return self.path / "options.yaml"

    @property
    def snapshots(self) -> Path:
        return self.path / "snapshots"

    @property
    def train_log(self) -> Path:
        return self.path / "train.log"

    @property
    def valid_log(self) -> Path:
        return self.path / "valid.log"

    @property
    def lock_file(self) -> Path:
        return self.path / "lock"

    # -- opening and creating ---------------------------------------------------------------
    @classmethod
    def open(cls, root: Path, name: str) -> "Experiment":
        """An existing experiment by name (or by path to its directory)."""
        path = Path(name)
        if not (path.is_dir() and (path / "options.yaml").is_file()):
            check_name(name)
            path = Path(root) / name
        if not (path / "options.yaml").is_file():
            known = list_names(root)
            hint = f"; known: {', '.join(known[:8])}{' ...' if len(known) > 8 else ''}" \
                if known else f"; {root} holds no experiments (create one with `hgx new`)"
            raise HgxError(f"no experiment '{name}' in {root}{hint}")
        return cls(path)

    @classmethod
    def create(cls, root: Path, name: str, opts: dict, parent: dict | None = None) -> "Experiment":
        """A new experiment directory. Refuses an existing name without touching it."""
        check_name(name)
        root = Path(root)
        path = root / name
        if path.exists():
            raise HgxError(f"experiment '{name}' already exists in {root}; pick another name, "
                           f"or `hgx continue {name}` to resume it")
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f".{name}.creating-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "snapshots").mkdir(parents=True)
        exp = cls(tmp)
        atomic_write(exp.options_file, hopts.dump_yaml(opts))
        atomic_write(tmp / "experiment.yaml", hopts.yaml.dump(
            {"name": name, "created": now(), "hgx_version": __version__, "parent": parent},
            Dumper=_ListsOnOneLine, sort_keys=False, width=100))
        atomic_write(exp.train_log, format_tsv(TRAIN_COLUMNS, []))
        atomic_write(exp.valid_log, format_tsv(VALID_COLUMNS, []))
        exp.write_state({"epochs_done": 0, "iteration": 0, "global_step": 0,
                         "last_snapshot": None, "best_snapshot": None, "best_acc": None,
                         "best_epoch": None, "finished": False})
        try:
            os.rename(tmp, path)  # fails if the name appeared meanwhile
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            raise HgxError(f"experiment '{name}' already exists in {root}; pick another name")
        return cls(path)

    # -- options, lineage, history ----------------------------------------------------------
    def options(self) -> dict[str, Any]:
        """The stored options, validated; unknown or wrongly typed keys are named."""
        try:
            data = hopts.read_yaml(self.options_file)
            values = hopts.check_dict(data, str(self.options_file))
        except UsageError as err:  # a damaged file, not a bad command line: exit 1
            raise HgxError(f"{err}; fix the file by hand (`hgx show` of a sibling experiment "
                           "shows valid values)") from None
        merged = hopts.defaults()
        merged.update(values)
        return merged

    def meta(self, strict: bool = False) -> dict:
        """experiment.yaml (name, creation, lineage). A damaged file raises HgxError naming it
        (always with ``strict``; otherwise an absent file reads as empty)."""
        path = self.path / "experiment.yaml"
        if not path.is_file():
            if strict:
                raise HgxError(f"{path} is missing; restore it (it holds the lineage) or "
                               "recreate the experiment")
            return {}
        try:
            data = hopts.read_yaml(path)
        except UsageError as err:
            raise HgxError(f"{self.name} is damaged: {err}") from None
        if not isinstance(data, dict):
            raise HgxError(f"{self.name} is damaged: {path} does not hold a mapping; fix or "
                           "restore the file")
        return data

    def parent(self) -> dict | None:
        return self.meta().get("parent")

    def write_options(self, opts: dict) -> None:
        atomic_write(self.options_file, hopts.dump_yaml(opts))

    def record(self, command: str, overrides: dict, argv: list[str] | None = None,
               **extra) -> None:
        entry = {"time": now(), "command": command,
                 "argv": list(sys.argv[1:] if argv is None else argv),
                 "overrides": overrides, "hgx_version": __version__, "git_commit": git_commit(),
                 "host": socket.gethostname(), "pid": os.getpid(), **extra}
        path = self.path / "history.jsonl"
        old = path.read_bytes() if path.is_file() else b""
        atomic_write(path, old + (json.dumps(entry) + "\n").encode())

    def history(self) -> list[dict]:
        path = self.path / "history.jsonl"
        if not path.is_file():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    # -- state ------------------------------------------------------------------------------
    def state(self) -> dict:
        try:
            return json.loads((self.path / "state.json").read_text())
        except (OSError, ValueError):
            return {"epochs_done": 0, "last_snapshot": None, "best_snapshot": None,
                    "best_acc": None, "best_epoch": None}

    def write_state(self, state: dict) -> None:
        atomic_write(self.path / "state.json", json.dumps(state, indent=1))

    def status(self) -> str:
        holder = read_lock(self.lock_file) if self.lock_file.exists() else None
        if holder is not None and not lock_is_stale(holder):
            return "running"
        state = self.state()
        try:
            total = int(self.options()["epochs"])
        except HgxError:
            return "broken"
        done = state.get("epochs_done", 0)
        if done >= total:
            return "finished"
        if holder is not None or self.lock_file.exists():
            return "crashed"
        if state.get("last_snapshot") is None:
            return "new"
        return "stopped"

    # -- logs -------------------------------------------------------------------------------
    def append_log(self, which: str, row: dict) -> None:
        """Add (or replace) an epoch's row. Columns a run adds to the standard ones (the
        adversarial ``d_loss``, ``k_t``) join the header, after them."""
        path, cols = (self.train_log, TRAIN_COLUMNS) if which == "train" else \
            (self.valid_log, VALID_COLUMNS)
        rows = [r for r in read_tsv(path) if r.get("epoch") != row["epoch"]]
        extra = [k for r in rows + [row] for k in r if k not in cols]
        cols = tuple(cols) + tuple(dict.fromkeys(extra))
        atomic_write(path, format_tsv(cols, rows + [row]))

    def truncate_logs(self, epoch: int) -> None:
        """Drop rows past ``epoch`` (they belong to work the snapshot does not hold)."""
        for path, cols in ((self.train_log, TRAIN_COLUMNS), (self.valid_log, VALID_COLUMNS)):
            rows = read_tsv(path)
            keep = [r for r in rows if r.get("epoch", 0) <= epoch]
            if len(keep) != len(rows):
                extra = [k for r in keep for k in r if k not in cols]
                atomic_write(path, format_tsv(tuple(cols) + tuple(dict.fromkeys(extra)), keep))

    # -- snapshots --------------------------------------------------------------------------
    def snapshot_path(self, epoch: int, iteration: int = 0) -> Path:
        """End of ``epoch``: epoch-NNNN.pt; ``iteration`` steps into it: epoch-NNNN-itK.pt.

        Names sort in training order."""
        tail = f"-it{iteration:07d}" if iteration else ""
        return self.snapshots / f"epoch-{epoch:04d}{tail}.pt"

    def snapshot_files(self) -> list[Path]:
        return sorted(self.snapshots.glob("epoch-*.pt"))

    @staticmethod
    def epoch_end(path: Path) -> int | None:
        """The epoch an end-of-epoch snapshot (epoch-NNNN.pt) closes; None for mid-epoch ones."""
        parts = Path(path).stem.split("-")
        return int(parts[1]) if len(parts) == 2 else None

    def kept_epochs(self) -> list[int]:
        return [e for e in map(self.epoch_end, self.snapshot_files()) if e is not None]

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary files (``.NAME.tmp-PID``) of writers that died mid-write (kill -9)."""
        removed = []
        for p in list(self.path.glob(".*.tmp-*")) + list(self.snapshots.glob(".*.tmp-*")):
            try:
                pid = int(p.name.rsplit("-", 1)[1])
            except ValueError:
                continue
            if pid != os.getpid() and not _pid_alive(pid):
                p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def resolve_path(self, rel: str | None) -> Path | None:
        return None if rel is None else self.path / rel


def list_names(root: Path) -> list[str]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / "options.yaml").is_file())
