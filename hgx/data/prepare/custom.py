"""Custom datasets: any annotation file in this layout that names its joints and their left/right
mirror pairs in its attributes.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from hgx.data.joints import Skeleton
from hgx.errors import HgxError


def describe_custom(h5_path) -> Skeleton:
    """Validate a custom annotation file and return the Skeleton its attributes describe.

    A custom dataset is an h5 in this layout (``center``, ``scale``, ``part``, ``imgname``...)
    with attributes ``joint_names`` (J strings) and ``flip_pairs`` ((P, 2) 0-based joint
    indices, empty when none). Optional: ``name`` (default: the file name), ``pck_norm``
    ('head' or 'torso'; default 'head' when the file has finite ``normalize`` values, else
    'torso'), ``torso`` (2 joint indices; default r-shoulder/l-hip found by name), ``limbs``
    ((L, 2)) with ``limb_sides`` (L letters l/r/c; default 'c'), ``acc_joints`` (default all).
    Raises HgxError naming the missing attribute or the inconsistency.
    """
    from hgx.data.dataset import read_annotations

    path = Path(h5_path)
    if not path.is_file():
        raise HgxError(f"custom annotation file {path} not found; check the path")
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            has_norm = "normalize" in f
    except OSError as err:
        raise HgxError(f"custom annotation file {path} cannot be read as HDF5 ({err})") from None
    missing = [k for k in ("joint_names", "flip_pairs") if k not in attrs]
    if missing:
        raise HgxError(
            f"custom annotation file {path} lacks the attribute(s) {', '.join(missing)}: a custom "
            "dataset names its joints and their left/right mirror pairs, e.g. with h5py "
            "f.attrs['joint_names'] = ['head', 'l_hand', 'r_hand'] and "
            "f.attrs['flip_pairs'] = [[1, 2]] (0-based; [] when none)")
    names = tuple(_attr_strings(attrs["joint_names"]))
    if not names or len(set(names)) != len(names):
        raise HgxError(f"custom annotation file {path}: attribute joint_names must list each "
                       f"joint once (it has {list(names)})")
    j = len(names)
    annot = read_annotations(path, joints=j)
    where = f"custom annotation file {path}: attribute"
    flips = _index_pairs(attrs["flip_pairs"], j, f"{where} flip_pairs")
    used = [x for pair in flips for x in pair]
    if len(set(used)) != len(used) or any(a == b for a, b in flips):
        raise HgxError(f"{where} flip_pairs {flips} pairs a joint with itself or uses a joint "
                       "twice; list each left/right pair once")

    finite_norm = has_norm and bool(np.any(np.isfinite(annot.normalize) & (annot.normalize > 0)))
    pck_norm = _attr_strings(attrs["pck_norm"])[0] if "pck_norm" in attrs else \
        ("head" if finite_norm else "torso")
    if pck_norm not in ("head", "torso"):
        raise HgxError(f"{where} pck_norm is {pck_norm!r}; use 'head' or 'torso'")
    if "torso" in attrs:
        torso = _index_pairs(attrs["torso"], j, f"{where} torso")
        if len(torso) != 1:
            raise HgxError(f"{where} torso must be two joint indices")
        torso = torso[0]
    else:
        torso = _torso_by_name(names)
    if pck_norm == "torso" and torso is None:
        raise HgxError(f"custom annotation file {path} has no head unit (normalize) and no torso "
                       "joints: add the attribute torso = [a, b] (0-based joints whose distance "
                       "normalises PCK) or a 'normalize' dataset")
    if pck_norm == "head" and not finite_norm:
        raise HgxError(f"custom annotation file {path} says pck_norm='head' but has no finite "
                       "'normalize' values; add them or set pck_norm='torso'")
    limbs = ()
    if "limbs" in attrs:
        pairs = _index_pairs(attrs["limbs"], j, f"{where} limbs")
        sides = _attr_strings(attrs["limb_sides"])[0] if "limb_sides" in attrs else ""
        sides = sides if len(sides) == len(pairs) else "c" * len(pairs)
        if any(s not in "lrc" for s in sides):
            raise HgxError(f"{where} limb_sides must be letters l, r or c, one per limb")
        limbs = tuple((a, b, s) for (a, b), s in zip(pairs, sides))
    acc = tuple(range(j))
    if "acc_joints" in attrs:
        acc = tuple(int(x) for x in np.asarray(attrs["acc_joints"]).reshape(-1))
        if not acc or any(not 0 <= x < j for x in acc):
            raise HgxError(f"{where} acc_joints must be joint indices in 0..{j - 1}")
    name = _attr_strings(attrs["name"])[0] if "name" in attrs else path.stem
    return Skeleton(name=name, joints=names, flip_pairs=tuple(flips), limbs=limbs,
                    pck_norm=pck_norm, torso=torso, acc_joints=acc)


def _attr_strings(value) -> list[str]:
    arr = np.atleast_1d(np.asarray(value, dtype=object)).reshape(-1)
    return [v.decode() if isinstance(v, (bytes, np.bytes_)) else str(v) for v in arr]


def _index_pairs(value, j: int, what: str) -> list[tuple[int, int]]:
    arr = np.asarray(value)
    if arr.size == 0:
        return []
    if arr.dtype.kind not in "iuf" or arr.size % 2 or np.any(arr != np.round(arr)):
        raise HgxError(f"{what} must be pairs of 0-based joint indices, not {arr.tolist()}")
    arr = arr.astype(np.int64).reshape(-1, 2)
    if np.any(arr < 0) or np.any(arr >= j):
        raise HgxError(f"{what} {arr.tolist()} names joints outside 0..{j - 1}")
    return [(int(a), int(b)) for a, b in arr]


def _torso_by_name(names) -> tuple[int, int] | None:
    def key(s: str) -> str:
        s = s.lower().replace("right", "r").replace("left", "l")
        return "".join(c for c in s if c.isalnum())

    keys = [key(n) for n in names]
    if "rshoulder" in keys and "lhip" in keys:
        return keys.index("rshoulder"), keys.index("lhip")
    return None
