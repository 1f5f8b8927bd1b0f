"""Runs to compare and their lineage.

A *run* is an hgx experiment directory (given by path or by name under the experiments root), a
pose-hg-train (Torch7) experiment directory holding only ``train.log`` / ``valid.log``, or a
directory holding experiments (all of them). An hgx branch records its parent (name, path, epoch)
in ``experiment.yaml`` and continues its parent's epoch numbering. Everything here only reads.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hgx import options as hopts
from hgx.compare.logs import METRICS, read_log
from hgx.errors import HgxError, UsageError
from hgx.experiment import exp_root, list_names
from hgx.lock import lock_is_stale, read_lock

try:  # libyaml when present: reading 50 options files takes 10 ms instead of 100
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _YamlLoader


# -- runs ---------------------------------------------------------------------------------------
@dataclass
class Run:
    """One run's curves and what the table says of it (read once, never written)."""

    name: str
    path: Path                      # resolved directory
    kind: str                       # "hgx" | "torch7"
    train: list[dict[str, float]]
    valid: list[dict[str, float]]
    options: dict[str, Any] | None = None
    parent: dict | None = None      # {"name", "path", "epoch"} of an hgx branch
    state: dict = field(default_factory=dict)
    status: str = ""
    label: str = ""                 # legend / table name (the name, made unique)

    def __post_init__(self):
        self.label = self.label or self.name

    # curves
    def series(self, metric: str) -> tuple[np.ndarray, np.ndarray]:
        log, column, _ = METRICS[metric]
        rows = self.train if log == "train" else self.valid
        x = np.fromiter((r["epoch"] for r in rows), float, len(rows))
        y = np.fromiter((r.get(column, math.nan) for r in rows), float, len(rows))
        return x, y

    def value_at(self, metric: str, epoch: float) -> float | None:
        log, column, _ = METRICS[metric]
        for r in (self.train if log == "train" else self.valid):
            if r["epoch"] == epoch:
                v = r.get(column, math.nan)
                return None if v != v else v
        return None

    # table
    @property
    def epochs_done(self) -> int:
        if self.kind == "hgx" and self.state.get("epochs_done") is not None:
            return int(self.state["epochs_done"])
        last = [r["epoch"] for r in (self.train[-1:] + self.valid[-1:])]
        return int(max(last)) if last else 0

    @property
    def epochs_total(self) -> int | None:
        return int(self.options["epochs"]) if self.options else None

    def best(self) -> tuple[float | None, int | None]:
        """Best valid accuracy and its epoch: state.json's, else the valid log's maximum."""
        if self.kind == "hgx" and self.state.get("best_acc") is not None:
            epoch = self.state.get("best_epoch")
            return float(self.state["best_acc"]), (int(epoch) if epoch is not None else None)
        accs = [(r.get("acc", math.nan), r["epoch"]) for r in self.valid]
        accs = [(a, e) for a, e in accs if a == a]
        if not accs:
            return None, None
        acc, epoch = max(accs, key=lambda t: (t[0], -t[1]))
        return acc, int(epoch)

    def last_lr(self) -> float | None:
        for r in reversed(self.train):
            lr = r.get("lr")
            if lr is not None and lr == lr:
                return lr
        return None

    @property
    def branch_epoch(self) -> float | None:
        if self.parent and self.parent.get("epoch") is not None:
            return float(self.parent["epoch"])
        return None


def _read_yaml(path: Path) -> Any:
    import yaml

    try:
        data = yaml.load(path.read_text(), Loader=_YamlLoader)
    except yaml.YAMLError:
        raise UsageError(f"{path} is not valid YAML; fix or restore the file") from None
    except OSError as err:
        raise HgxError(f"cannot read {path}: {err.strerror or err}") from None
    return {} if data is None else data


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def is_hgx(path: Path) -> bool:
    return (path / "options.yaml").is_file()


def is_torch7(path: Path) -> bool:
    return not is_hgx(path) and ((path / "train.log").is_file() or (path / "valid.log").is_file())


def load_run(path: Path) -> Run:
    """One run directory (hgx or Torch7), read-only."""
    path = Path(path).resolve()
    if is_hgx(path):
        try:  # a damaged file is not a command-line error: exit 1, naming the file
            opts_data = _read_yaml(path / "options.yaml")
            if not isinstance(opts_data, dict):
                hopts.check_dict(opts_data, str(path / "options.yaml"))  # raises, naming it
            options = hopts.defaults()
            # an option of another hgx version is shown as written, not refused
            options.update({k: hopts.coerce(k, v, str(path / "options.yaml"))
                            if k in hopts.BY_NAME else v for k, v in opts_data.items()})
            meta_path = path / "experiment.yaml"
            meta = _read_yaml(meta_path) if meta_path.is_file() else {}
        except UsageError as err:
            raise HgxError(str(err)) from None
        parent = meta.get("parent") if isinstance(meta, dict) else None
        state = _read_json(path / "state.json")
        run = Run(path.name, path, "hgx", read_log(path / "train.log"),
                  read_log(path / "valid.log"), options,
                  parent if isinstance(parent, dict) else None, state)
        run.status = _status(run)
        return run
    if is_torch7(path):
        run = Run(path.name, path, "torch7", read_log(path / "train.log"),
                  read_log(path / "valid.log"))
        run.status = "torch7"
        return run
    raise HgxError(f"{path} is neither an hgx experiment (no options.yaml) nor a pose-hg-train "
                   "experiment (no train.log or valid.log)")


def _status(run: Run) -> str:
    """Experiment.status() without reading the files again."""
    lock = run.path / "lock"
    holder = read_lock(lock) if lock.exists() else None
    if holder is not None and not lock_is_stale(holder):
        return "running"
    total = run.epochs_total
    if total is not None and run.epochs_done >= total:
        return "finished"
    if lock.exists():
        return "crashed"
    if run.state.get("last_snapshot") is None:
        return "new"
    return "stopped"


def run_names(root: Path) -> list[str]:
    """The runs of an experiments root: hgx experiments and pose-hg-train directories."""
    root = Path(root)
    names = set(list_names(root))
    if root.is_dir():
        names |= {p.name for p in root.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and is_torch7(p)}
    return sorted(names)


def resolve_paths(items: Iterable[str], exp_dir=None) -> list[Path]:
    """PATHS as typed -> run directories. An item is a run directory, a directory of
    experiments (all of them), or a name under the experiments root. None given: every
    experiment of the root."""
    root = exp_root(exp_dir)
    items = list(items)
    if not items:
        names = run_names(root)
        if not names:
            raise HgxError(f"{root} holds no experiments; name the runs to compare "
                           "(paths of hgx or pose-hg-train experiment directories)")
        return [root / n for n in names]
    out: list[Path] = []
    for item in items:
        p = Path(item).expanduser()
        if p.is_dir() and (is_hgx(p) or is_torch7(p)):
            out.append(p)
            continue
        if p.is_dir():
            inner = [c for c in sorted(p.iterdir())
                     if c.is_dir() and not c.name.startswith(".") and (is_hgx(c) or is_torch7(c))]
            if inner:
                out.extend(inner)
                continue
        if "/" not in item and (root / item).is_dir() and (is_hgx(root / item)
                                                           or is_torch7(root / item)):
            out.append(root / item)
            continue
        if p.exists():
            raise HgxError(f"{item} is not an experiment: an hgx experiment has options.yaml, a "
                           "pose-hg-train one train.log/valid.log")
        known = list_names(root)
        hint = f"; known in {root}: {', '.join(known[:8])}{' ...' if len(known) > 8 else ''}" \
            if known else ""
        raise HgxError(f"no experiment '{item}' (not a directory, nor a name in {root}){hint}")
    unique, seen = [], set()
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def load_runs(items: Iterable[str], exp_dir=None) -> list[Run]:
    runs = [load_run(p) for p in resolve_paths(items, exp_dir)]
    _unique_labels(runs)
    return runs


def _unique_labels(runs: list[Run]) -> None:
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    for r in runs:
        r.label = r.name if counts[r.name] == 1 else f"{r.path.parent.name}/{r.name}"


# -- lineage ------------------------------------------------------------------------------------
class Lineage:
    """Finds runs' parents: among the compared runs first, then on disk (read-only)."""

    def __init__(self, runs: list[Run]):
        self.by_path: dict[Path, Run | None] = {r.path: r for r in runs}

    def parent_of(self, run: Run) -> Run | None:
        if not run.parent:
            return None
        candidates = []
        if run.parent.get("path"):
            candidates.append(Path(run.parent["path"]))
        if run.parent.get("name"):
            candidates.append(run.path.parent / str(run.parent["name"]))
        for c in candidates:
            try:
                key = c.resolve()
            except OSError:
                continue
            if key in self.by_path:
                if self.by_path[key] is not None:
                    return self.by_path[key]
                continue
            try:
                found = load_run(key) if is_hgx(key) else None
            except HgxError:
                found = None
            self.by_path[key] = found
            if found is not None:
                return found
        return None

    def chain(self, run: Run) -> list[tuple[Run, float]]:
        """Ancestors nearest first, each with the epoch its child branched from it."""
        out, seen, cur = [], {run.path}, run
        while cur.branch_epoch is not None:
            parent = self.parent_of(cur)
            if parent is None or parent.path in seen:
                break
            out.append((parent, cur.branch_epoch))
            seen.add(parent.path)
            cur = parent
        return out
