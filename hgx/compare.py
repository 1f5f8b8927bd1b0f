"""Training curves of many runs side by side: loading, lineage, the comparison table.

A *run* is one of
  * an hgx experiment directory (``options.yaml``, ``experiment.yaml``, ``state.json``,
    ``train.log``, ``valid.log``), given by path or by name under the experiments root;
  * a pose-hg-train (Torch7) experiment directory holding only ``train.log`` / ``valid.log``,
    written by ``optim.Logger``: a tab-separated header naming the columns in Lua's hash order
    (``epoch``, ``loss``, ``acc``, ``LR``; names padded with spaces, a trailing tab), one row
    per epoch;
  * a directory holding experiments (``exp/``): all of them.

Everything here only reads: no lock, no cache, nothing is written into an experiment. Logs
that change while they are read (a run training, a Torch7 log with a half-written last line)
are read up to their last complete row.

Lineage: an hgx branch records its parent (name, path, epoch) in ``experiment.yaml`` and
continues its parent's epoch numbering. Its curve is drawn from the parent's value at the
branch epoch (the fork point), and ``ancestry`` adds the parents' history leading to it.

Smoothing (``smooth=N``) is a trailing moving average over the last N logged epochs (fewer at
the start of a line, NaNs skipped); the table always shows raw values.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from hgx import options as hopts
from hgx.errors import HgxError, UsageError
from hgx.experiment import exp_root, list_names, lock_is_stale, read_lock

# metric -> (log, column, axis title)
METRICS: dict[str, tuple[str, str, str]] = {
    "train_loss": ("train", "loss", "train loss"),
    "valid_loss": ("valid", "loss", "valid loss"),
    "train_acc": ("train", "acc", "train accuracy"),
    "valid_acc": ("valid", "acc", "valid accuracy"),
    "valid_pckh": ("valid", "pckh", "valid PCKh@0.5"),
}
DEFAULT_METRICS = ("train_loss", "valid_loss", "train_acc", "valid_acc")

# Column names of other trainers' logs -> hgx's (after lower-casing and stripping).
COLUMN_ALIASES = {"learningrate": "lr", "learning_rate": "lr", "accuracy": "acc",
                  "epochs": "epoch", "err": "loss", "pckh@0.5": "pckh"}

try:  # libyaml when present: reading 50 options files takes 10 ms instead of 100
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _YamlLoader


# -- logs ---------------------------------------------------------------------------------------
def read_log(path: Path) -> list[dict[str, float]]:
    """Rows of a training log, sorted by epoch, one per epoch.

    Reads hgx's TSV logs and pose-hg-train's ``optim.Logger`` files alike: the header names
    the columns in any order and capitalisation (padding spaces and a trailing tab allowed);
    values are numbers (``%11.4e`` or plain). A row repeating the header (a Torch7 run
    continued with ``-continue``) is skipped, an incomplete row (being written) is dropped,
    a missing ``epoch`` column is replaced by the row number (1, 2, ...), and an epoch logged
    twice keeps its last row (the later run redid it). A missing file gives no rows.
    """
    try:
        text = Path(path).read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []
    except OSError as err:
        raise HgxError(f"cannot read {path}: {err.strerror or err}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    sep = "\t" if "\t" in lines[0] else None
    raw_header = lines[0].split(sep)
    header = [_column(c) for c in raw_header]
    while header and header[-1] == "":
        header.pop()
    if not header:
        return []
    has_epoch = "epoch" in header
    torch_style = _torch_style(raw_header)
    by_epoch: dict[float, dict[str, float]] = {}
    number = 0
    for i, line in enumerate(lines[1:], start=1):
        values = line.split(sep)
        if _column(values[0]) == header[0] and \
                [_column(v) for v in values[:len(header)]] == header:
            continue  # the header again
        last_unfinished = i == len(lines) - 1 and not text.endswith("\n")
        if len(values) < len(header) or (last_unfinished and torch_style
                                         and not line.endswith("\t")):
            continue  # a row still being written
        number += 1
        row = {key: _number(value) for key, value in zip(header, values) if key}
        if not has_epoch:
            row["epoch"] = float(number)
        epoch = row["epoch"]
        if epoch != epoch:
            continue  # no epoch number in this row
        by_epoch.pop(epoch, None)  # a later row of the same epoch replaces the earlier one
        by_epoch[epoch] = row
    return sorted(by_epoch.values(), key=lambda r: r["epoch"])


def _torch_style(raw_header: list[str]) -> bool:
    """optim.Logger ends every line with a tab: a last line without one is incomplete."""
    return len(raw_header) > 1 and raw_header[-1].strip() == ""


def _column(name: str) -> str:
    key = name.strip().lower()
    return COLUMN_ALIASES.get(key, key)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


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


@dataclass
class Curve:
    """What is drawn of one run for one metric."""

    x: np.ndarray                  # own epochs (starting at the fork point when there is one)
    y: np.ndarray
    ancestry_x: np.ndarray         # the parents' history leading to the fork (may be empty)
    ancestry_y: np.ndarray
    fork: tuple[float, float] | None   # (epoch, value) where it leaves its parent
    raw_y: np.ndarray | None = None    # unsmoothed y when smoothing


def smooth(y: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over ``window`` points (fewer at the start), NaNs skipped."""
    if window <= 1 or len(y) == 0:
        return y
    ok = np.isfinite(y)
    vals = np.where(ok, y, 0.0)
    csum = np.concatenate([[0.0], np.cumsum(vals)])
    ccount = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, len(y) + 1)
    lo = np.maximum(idx - window, 0)
    total = csum[idx] - csum[lo]
    count = ccount[idx] - ccount[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    out[~ok & (count == 0)] = np.nan
    return out


def curves(runs: list[Run], metric: str, ancestry: bool = False, smooth_window: int = 0,
           last: int = 0, lineage: Lineage | None = None) -> dict[str, Curve]:
    """One Curve per run label: own rows from the fork point on, and (``ancestry``) the
    parents' rows up to it; smoothed, then cut to the last ``last`` epochs of all runs."""
    lineage = lineage or Lineage(runs)
    out: dict[str, Curve] = {}
    for run in runs:
        x, y = run.series(metric)
        fork = None
        chain = lineage.chain(run) if run.branch_epoch is not None else []
        if chain:
            parent, epoch = chain[0]
            value = parent.value_at(metric, epoch)
            if value is not None and not (len(x) and x[0] <= epoch):
                fork = (epoch, value)
                x, y = np.concatenate([[epoch], x]), np.concatenate([[value], y])
        ax_, ay_ = np.empty(0), np.empty(0)
        if ancestry and chain:
            xs, ys, upto = [], [], None
            for parent, epoch in chain:
                px, py = parent.series(metric)
                keep = px <= (epoch if upto is None else min(epoch, upto))
                if parent.branch_epoch is not None:
                    keep &= px >= parent.branch_epoch
                xs.insert(0, px[keep])
                ys.insert(0, py[keep])
                upto = parent.branch_epoch
            ax_, ay_ = np.concatenate(xs), np.concatenate(ys)
            # one point per epoch: a parent's fork point is also its own parent's last point
            ax_, first = np.unique(ax_, return_index=True)
            ay_ = ay_[first]
        raw = None
        if smooth_window > 1:
            raw = y
            if len(ax_):  # smooth across the fork so the two parts still meet
                joined = smooth(np.concatenate([ay_, y[1:] if fork else y]), smooth_window)
                ay_ = joined[:len(ay_)]
                y = np.concatenate([[joined[len(ay_) - 1]], joined[len(ay_):]]) if fork \
                    else joined[len(ay_):]
            else:
                y = smooth(y, smooth_window)
            if fork:
                fork = (fork[0], float(y[0]))
        out[run.label] = Curve(x, y, ax_, ay_, fork, raw)
    if last and last > 0:
        ends = [c.x[-1] for c in out.values() if len(c.x)]
        if ends:
            lo = max(ends) - last + 1
            for c in out.values():
                keep = c.x >= lo
                c.x, c.y = c.x[keep], c.y[keep]
                if c.raw_y is not None:
                    c.raw_y = c.raw_y[keep]
                akeep = c.ancestry_x >= lo
                c.ancestry_x, c.ancestry_y = c.ancestry_x[akeep], c.ancestry_y[akeep]
                if c.fork and c.fork[0] < lo:
                    c.fork = None
    return out


def parse_metrics(values: Iterable[str] | None) -> list[str]:
    """``--metric`` values (repeatable, or comma-separated; '-' or '_') -> metric names."""
    out: list[str] = []
    for value in values or []:
        for part in str(value).replace(",", " ").split():
            key = part.strip().lower().replace("-", "_")
            if key not in METRICS:
                raise UsageError(f"--metric: unknown metric {part!r}; choose among "
                                 f"{', '.join(METRICS)}")
            if key not in out:
                out.append(key)
    return out or list(DEFAULT_METRICS)


# -- the table ----------------------------------------------------------------------------------
def differing_options(runs: list[Run]) -> list[str]:
    """Options (schema order) whose values are not all equal across the hgx runs."""
    opts = [r.options for r in runs if r.options is not None]
    if len(opts) < 2:
        return []
    keys = [o.name for o in hopts.SCHEMA]
    keys += sorted(set().union(*opts) - set(keys))
    return [k for k in keys if any(o.get(k) != opts[0].get(k) for o in opts[1:])]


def _fmt_value(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return " ".join(_fmt_value(i) for i in v) or "[]"
    return str(v) if v != "" else '""'


def table_data(runs: list[Run], metrics: list[str] | None = None) -> dict:
    """The comparison table as plain data (``--json`` prints it; ``render_table`` draws it)."""
    metrics = list(metrics or DEFAULT_METRICS)
    diff = differing_options(runs)
    rows = []
    for r in runs:
        best, best_epoch = r.best()
        last = {}
        for m in metrics:
            _, y = r.series(m)
            finite = y[np.isfinite(y)]
            last[m] = float(finite[-1]) if len(finite) else None
        rows.append({
            "run": r.label, "path": str(r.path), "kind": r.kind, "status": r.status,
            "parent": r.parent.get("name") if r.parent else None,
            "branched_from_epoch": r.parent.get("epoch") if r.parent else None,
            "epochs_done": r.epochs_done, "epochs": r.epochs_total,
            "best_acc": best, "best_epoch": best_epoch, "last_lr": r.last_lr(),
            "last": last,
            "options": {k: (r.options.get(k) if r.options is not None else None) for k in diff},
        })
    return {"metrics": metrics, "differing_options": diff, "runs": rows}


OPTION_COLUMNS = 4   # more options differ: one wrapped column of key=value pairs
SHORT = {"train_loss": "train loss", "valid_loss": "valid loss", "train_acc": "train acc",
         "valid_acc": "valid acc", "valid_pckh": "PCKh"}


def render_table(data: dict, title: str | None = None):
    """A rich Table: run, parent (@ branch epoch), epochs done/total, best valid acc (epoch),
    last lr, the last value of each metric, then only the options that differ across the
    runs (``epochs``, the total, already shows in the epochs column; ``lr`` too, in the last lr
    column, unless a schedule moved it)."""
    from rich.markup import escape
    from rich.table import Table

    same_lr = all(r["kind"] == "hgx" and r["options"].get("lr") == r["last_lr"]
                  for r in data["runs"])  # then the "last lr" column already shows it
    options = [k for k in data["differing_options"]
               if k != "epochs" and not (k == "lr" and same_lr)]
    packed = len(options) > OPTION_COLUMNS  # many: one wrapped column of key=value
    caption = "in cyan: the options that differ across the runs" if options else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left",
                  show_lines=packed)
    table.add_column("run", no_wrap=True)
    table.add_column("parent", no_wrap=True)
    table.add_column("epochs", justify="right", no_wrap=True)
    table.add_column("best acc (ep)", justify="right", no_wrap=True)
    table.add_column("last lr", justify="right", no_wrap=True)
    for m in data["metrics"]:
        table.add_column(SHORT[m], justify="right", no_wrap=True)
    if packed:
        table.add_column("options that differ", style="cyan", header_style="bold cyan",
                         min_width=24, ratio=1, overflow="fold")
    else:
        for k in options:
            table.add_column(k, justify="right", style="cyan", header_style="bold cyan",
                             overflow="fold")
    for row in data["runs"]:
        parent = "-" if not row["parent"] else \
            f"{row['parent']} @{_fmt_value(row['branched_from_epoch'])}"
        epochs = f"{row['epochs_done']}/{row['epochs']}" if row["epochs"] else \
            str(row["epochs_done"])
        if row["status"] in ("running", "stopped", "crashed", "new"):
            epochs = f"[dim]{row['status']}[/] {epochs}"
        best = "-" if row["best_acc"] is None else \
            f"{row['best_acc']:.3f} ({row['best_epoch']})"
        cells = [escape(row["run"]) + (" [dim](torch7)[/]" if row["kind"] == "torch7" else ""),
                 escape(parent), epochs, best, _fmt_value(row["last_lr"])]
        for m in data["metrics"]:
            v = row["last"].get(m)
            cells.append("-" if v is None else (f"{v:.1f}" if m == "valid_pckh" else
                                                f"{v:.3f}" if m.endswith("acc") else f"{v:.4g}"))
        values = ["-" if row["kind"] != "hgx" else escape(_fmt_value(row["options"][k]))
                  for k in options]
        if packed:
            cells.append("-" if row["kind"] != "hgx" else
                         "  ".join(f"{k}={v}" for k, v in zip(options, values)))
        else:
            cells += values
        table.add_row(*cells)
    return table


# -- writing the figure, safely -----------------------------------------------------------------
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


def check_out(out: str | os.PathLike, protected: Iterable[Path],
              default: str = "./compare.png") -> Path:
    """The figure's path: .png/.svg/.pdf (no suffix: .png), never inside an experiment."""
    out = Path(out).expanduser()
    if out.suffix == "":
        out = out.with_suffix(".png")
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out {out}: the suffix picks the format; use .png, .svg or .pdf")
    target = out.resolve()
    for p in protected:
        p = Path(p).resolve()
        if target == p or p in target.parents:
            raise UsageError(f"--out {out} is inside the experiment {p}; hgx never writes into "
                             f"experiments: choose a path outside it (default {default})")
    if not target.parent.is_dir():
        raise UsageError(f"--out {out}: directory {target.parent} does not exist")
    return out


def save_figure(fig, out: Path, dpi: int = 110) -> Path:
    """Write atomically (a viewer reloading the file never sees half a picture)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out)
    FigureCanvasAgg(fig)
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix}")
    try:
        fig.savefig(tmp, format=FORMATS[out.suffix.lower()], dpi=dpi)
        os.replace(tmp, out)
    except BaseException as err:  # Ctrl-C while drawing too: leave no temporary file
        try:
            tmp.unlink()
        except OSError:
            pass
        if isinstance(err, OSError):
            raise HgxError(f"cannot write {out}: {err.strerror or err}") from None
        raise
    return out


# -- compare, once or watching ------------------------------------------------------------------
@dataclass
class Comparison:
    runs: list[Run]
    table: dict
    figure: Any
    out: Path | None


def compare(items: Iterable[str] = (), out: str | os.PathLike | None = "compare.png",
            metrics: Iterable[str] | None = None, last: int = 0, smooth_window: int = 0,
            ancestry: bool = False, exp_dir=None, title: str | None = None) -> Comparison:
    """Load the runs, build the table and the figure, write the figure (``out`` None: don't).

    Never writes into an experiment (``out`` inside one is refused)."""
    from hgx.plots import compare_figure

    metric_names = parse_metrics(metrics)
    if last < 0:
        raise UsageError(f"--last: expected a number of epochs >= 1, got {last}")
    if smooth_window < 0:
        raise UsageError(f"--smooth: expected a window of epochs >= 1, got {smooth_window}")
    runs = load_runs(items, exp_dir)
    lineage = Lineage(runs)
    protected = [r.path for r in runs] + [p for p in lineage.by_path]
    path = check_out(out, protected) if out is not None else None
    data = table_data(runs, metric_names)
    fig = compare_figure(runs, metric_names, ancestry=ancestry, smooth_window=smooth_window,
                         last=last, lineage=lineage, title=title)
    if path is not None:
        protected = [r.path for r in runs] + [p for p, r in lineage.by_path.items() if r]
        check_out(path, protected)  # ancestors found while drawing are protected too
        save_figure(fig, path)
    return Comparison(runs, data, fig, path)


def watch(render: Callable[[int], Any], seconds: float, max_iterations: int = 0,
          sleep: Callable[[float], Any] = time.sleep) -> int:
    """Call ``render(i)`` every ``seconds`` until Ctrl-C (or ``max_iterations`` calls).

    Returns the number of refreshes; Ctrl-C ends it quietly."""
    if seconds <= 0:
        raise UsageError(f"--watch: expected a number of seconds > 0, got {seconds:g}")
    done = 0
    try:
        while True:
            render(done)
            done += 1
            if max_iterations and done >= max_iterations:
                return done
            sleep(seconds)
    except KeyboardInterrupt:
        return done


# -- the tree -----------------------------------------------------------------------------------
def lineage_tree(exp_dir=None) -> list[dict]:
    """Every experiment of the root (hgx, and pose-hg-train directories as roots) as nested
    dicts, children sorted by branch epoch. A damaged experiment shows as 'broken'."""
    root = exp_root(exp_dir)
    runs = []
    for name in run_names(root):
        try:
            runs.append(load_run(root / name))
        except HgxError as err:
            runs.append(Run(name, (root / name).resolve(), "hgx", [], [], status=f"broken: {err}"))
    by_path = {r.path: r for r in runs}
    by_name = {r.name: r for r in runs}
    children: dict[Path | None, list[Run]] = {}
    orphans: dict[Path, str] = {}
    for r in runs:
        parent = None
        if r.parent:
            p = Path(r.parent.get("path") or "")
            parent = by_path.get(p.resolve()) if r.parent.get("path") else None
            parent = parent or by_name.get(str(r.parent.get("name")))
            if parent is None or parent is r:
                parent = None
                orphans[r.path] = str(r.parent.get("name"))
        children.setdefault(parent.path if parent else None, []).append(r)

    def node(r: Run, seen: set) -> dict:
        best, best_epoch = r.best()
        kids = sorted(children.get(r.path, []),
                      key=lambda c: (c.branch_epoch or 0, c.name)) if r.path not in seen else []
        return {"name": r.name, "path": str(r.path), "kind": r.kind, "status": r.status,
                "epochs_done": r.epochs_done, "epochs": r.epochs_total,
                "best_acc": best, "best_epoch": best_epoch,
                "branched_from_epoch": r.branch_epoch and int(r.branch_epoch),
                "missing_parent": orphans.get(r.path),
                "children": [node(c, seen | {r.path}) for c in kids]}

    return [node(r, set()) for r in sorted(children.get(None, []), key=lambda r: r.name)]


def render_tree(nodes: list[dict], root_label: str):
    from rich.tree import Tree

    from rich.markup import escape

    tree = Tree(f"[bold]{escape(root_label)}[/]")

    def label(n: dict) -> str:
        best = "-" if n["best_acc"] is None else f"{n['best_acc']:.3f} (ep {n['best_epoch']})"
        total = f"/{n['epochs']}" if n["epochs"] else ""
        fork = f"  from epoch {n['branched_from_epoch']}" \
            if n["branched_from_epoch"] is not None else ""
        missing = f"  [yellow](parent {escape(n['missing_parent'])} not found)[/]" \
            if n["missing_parent"] else ""
        return (f"[bold]{escape(n['name'])}[/]  best {best}  epochs {n['epochs_done']}{total}  "
                f"[dim]{escape(n['status'])}[/]{fork}{missing}")

    def add(parent, n: dict):
        branch = parent.add(label(n))
        for c in n["children"]:
            add(branch, c)

    for n in nodes:
        add(tree, n)
    return tree
