"""Files written so that a crash never leaves a half-written one (a temporary file beside the
target, fsync, rename, fsync of the directory), the TSV logs' format, and timestamps.
"""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any


def now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


# -- atomic files -------------------------------------------------------------------------------
def atomic_write(path: Path, data: bytes | str) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- logs ---------------------------------------------------------------------------------------
def read_tsv(path: Path) -> list[dict[str, Any]]:
    """Rows of a TSV log with a named header (any column order), numbers as floats."""
    if not Path(path).is_file():
        return []
    lines = Path(path).read_text().splitlines()
    if not lines:
        return []
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        row = {}
        for key, value in zip(header, line.split("\t")):
            try:
                row[key] = float(value) if value not in ("", "nan") else float("nan")
            except ValueError:
                row[key] = value
        rows.append(row)
    return rows


def format_tsv(columns: tuple[str, ...], rows: list[dict]) -> str:
    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            if v != v:
                return "nan"
            return f"{v:.6g}" if abs(v) < 1e-3 or abs(v) >= 1e6 else f"{v:.6f}".rstrip("0").rstrip(".")
        return str(v)
    out = ["\t".join(columns)]
    out += ["\t".join(fmt(r.get(c)) for c in columns) for r in rows]
    return "\n".join(out) + "\n"
