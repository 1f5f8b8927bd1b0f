"""Helpers shared by the benchmark scripts: arguments, timing, tables and the JSON blob.

Every benchmark script reads top to bottom and uses only these few helpers:

- ``base_parser`` adds ``--quick``, ``--device cpu|cuda|auto``, ``--json OUT`` and ``--repeats``;
- ``timed`` runs a function ``repeats`` times (after warm-up) with ``torch.cuda.synchronize()``
  around each run on CUDA, and returns the seconds of each run: report their ``median``;
- ``table`` prints rows as an aligned text table;
- ``emit`` prints the result as one ``JSON: {...}`` line and writes it to ``--json`` if given.

Speeds are always reported as ratios against a baseline measured in the same run, because the
machines these run on (2 shared CPU cores, or a GPU) vary too much for absolute figures alone.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python benchmarks/bench_x.py` from a plain checkout
    sys.path.insert(0, str(REPO))


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short run (fewer samples/steps)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                   help="where to run (auto = cuda when available)")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the JSON blob here")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed repeats per measurement; the median is reported")
    return p


def pick_device(name: str):
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


def sync(device) -> None:
    if getattr(device, "type", device) == "cuda":
        import torch

        torch.cuda.synchronize()


def timed(fn: Callable[[], object], repeats: int, warmup: int = 1, device="cpu") -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def median(values) -> float:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else float("nan")


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0 or a != a or b != b:
        return None
    return a / b


def reset_peak_memory(device) -> None:
    if getattr(device, "type", device) == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mib(device) -> float | None:
    """Peak CUDA memory allocated since the last reset (MiB); None on the CPU."""
    if getattr(device, "type", device) == "cuda":
        import torch

        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return None


def environment(device=None) -> dict:
    """What the figures were measured on: they only mean something next to this."""
    import cv2
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__,
           "opencv": cv2.__version__, "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
           "load_avg_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
           "git_commit": _git_commit()}
    if device is not None:
        env["device"] = str(device)
        if getattr(device, "type", None) == "cuda":
            env["gpu"] = torch.cuda.get_device_name(device)
    return env


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def fmt(value, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:
            return "nan"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: list[str], rows: list[list], digits: int = 2) -> str:
    cells = [[fmt(v, digits) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                      enumerate(zip(row, widths))) for row in cells]
    return "\n".join(out)


def emit(result: dict, path: str | None) -> dict:
    text = json.dumps(result, sort_keys=False, default=_jsonable)
    print("JSON: " + text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    return result


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def synthetic_options(size: str = "1280x720", n_train: int = 1000, **more):
    """hgx options for the built-in synthetic dataset: ``n_train`` training people and
    min(200, n_train) validation and test people. Generated once and cached in
    ``$HGX_CACHE_DIR`` or ``~/.cache/hgx``: the defaults are hgx's own (``hgx new`` reuses it)."""
    from hgx.options import resolve

    n_other = min(200, n_train)
    return resolve(typed={"dataset": "synthetic", "synth_size": size, "synth_train": n_train,
                          "synth_valid": n_other, "synth_test": n_other, **more})
