"""What the converters share: walking ``scipy.io.loadmat(struct_as_record=False, squeeze_me=True)``
output (fields missing or empty on some entries), the torso size and angle of a person, and
writing a prepared folder (splits, image links, ``prepare.json``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from hgx.data.formats import Rows, link_images, torso_angle, write_split
from hgx.data.joints import Skeleton
from hgx.errors import HgxError

SUMMARY_FILE = "prepare.json"


def _empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, np.ndarray):
        return value.size == 0
    if isinstance(value, str):
        return value.strip() == ""
    return False


def _field(obj, name: str):
    """``obj.name``; None when obj is None, the field is absent, or it is empty ([])."""
    if obj is None:
        return None
    value = getattr(obj, name, None)
    return None if _empty(value) else value


def _items(value) -> list:
    """A struct array as a list: squeeze_me gives one entry as a bare struct, none as [].

    Entries keep their positions (MPII's index and person are positions).
    """
    if _empty(value):
        return []
    if isinstance(value, np.ndarray):
        return list(value.reshape(-1))
    return [value]


def _num(value) -> float | None:
    """A number from a MATLAB scalar, 1-element array or numeric string; None if not one."""
    if _empty(value):
        return None
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.reshape(-1)[0]
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode(errors="replace")
    try:
        out = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _text(value) -> str | None:
    if _empty(value):
        return None
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size == 1 else None
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode()
    return str(value).strip() if value is not None else None


def _loadmat(path: Path, what: str) -> dict:
    import scipy.io as sio

    if not path.is_file():
        raise HgxError(f"{what} file {path} not found; check the path")
    try:
        return sio.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except NotImplementedError:
        raise HgxError(f"{what} file {path} is a MATLAB v7.3 (HDF5) file; re-save it in MATLAB "
                       "with save(file, '-v7') or pass the original download") from None
    except Exception as err:  # scipy raises ValueError, TypeError, OSError... on bad files
        raise HgxError(f"{what} file {path} cannot be read as a MATLAB file ({err}); download "
                       "it again") from None


def _torso_size(part: np.ndarray, present: np.ndarray, skel: Skeleton) -> float:
    a, b = skel.torso
    if not (present[a] and present[b]):
        return math.nan
    d = float(np.hypot(*(part[a] - part[b])))
    return d if d > 0 else math.nan


def _mid_torso_angle(part: np.ndarray, present: np.ndarray, skel: Skeleton) -> float:
    """torsoangle from the hips' midpoint to the shoulders' midpoint (no pelvis/thorax)."""
    idx = [skel.index(n) for n in ("l_hip", "r_hip", "l_shoulder", "r_shoulder")]
    if not all(present[i] for i in idx):
        return 0.0
    return torso_angle((part[idx[0]] + part[idx[1]]) / 2, (part[idx[2]] + part[idx[3]]) / 2)


def _folder_attr(folder) -> str | None:
    return None if folder is None else str(Path(folder).expanduser().resolve())


def _finish(out: Path, dataset: str, rows: dict, attrs: dict, skipped: dict, sources: dict,
            notes: list[str], attrs_by_split: dict | None = None) -> dict:
    """Write the splits, link the images, write and return the summary."""
    if out.exists() and not out.is_dir():
        raise HgxError(f"output {out} exists and is not a folder; choose another output folder")
    linked = link_images(out, sources)
    counts = {}
    for split, data in rows.items():
        arrays = data.arrays() if isinstance(data, Rows) else data
        write_split(out / "annot", split, arrays, (attrs_by_split or {}).get(split, attrs))
        counts[split] = int(len(arrays["scale"]))
    if not linked:
        notes = notes + [f"no image folder given: put the images in {out / 'images'}"]
    summary = {
        "dataset": dataset,
        "out": str(out),
        "splits": counts,
        "skipped": {s: dict(sorted(c.items())) for s, c in skipped.items()},
        "images": linked,
        "notes": notes,
    }
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return summary
