"""MPII: the official release ``mpii_human_pose_v1_u12_1.mat`` -> train / valid (Tompson's split) /
test in pose-hg-train's layout, the raw box adjusted once (see ``hgx.data.prepare``).
"""
from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from hgx.data.formats import Rows, crop_box, skeleton_attrs, torso_angle
from hgx.data.joints import MPII
from hgx.data.prepare.common import (
    _field,
    _finish,
    _folder_attr,
    _items,
    _loadmat,
    _num,
    _text,
)
from hgx.errors import HgxError

HEAD_SC = 0.6              # PCKh unit = 0.6 x head-box diagonal (MPII's util_get_head_size.m)


def load_valid_pairs(valid_h5=None) -> np.ndarray:
    """Tompson's validation split as (N, 2) int (index, person), 0-based, in valid.h5 order.

    From ``valid_h5`` (its ``index`` and ``person`` columns) when given, else the list
    packaged with hgx (``hgx/data/mpii_valid_pairs.py``, copied from pose-hg-train's valid.h5).
    """
    if valid_h5 is None:
        from hgx.data.mpii_valid_pairs import valid_pairs
        return valid_pairs()
    path = Path(valid_h5)
    if not path.is_file():
        raise HgxError(f"validation split file {path} not found; pass pose-hg-train's "
                       "annot/valid.h5 or leave it out to use the packaged split")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in ("index", "person") if k not in f]
            if missing:
                raise HgxError(f"validation split file {path} lacks {', '.join(missing)}; "
                               "pass pose-hg-train's annot/valid.h5")
            index = np.asarray(f["index"][()], np.float64).reshape(-1)
            person = np.asarray(f["person"][()], np.float64).reshape(-1)
    except OSError as err:
        raise HgxError(f"validation split file {path} cannot be read ({err})") from None
    if index.shape != person.shape:
        raise HgxError(f"validation split file {path}: index has {index.size} rows, person "
                       f"{person.size}")
    return np.stack([index, person], axis=1).round().astype(np.int64)


def prepare_mpii(mat_path, out_dir, images_dir=None, valid_h5=None) -> dict:
    """Convert the official MPII release into train/valid/test annotation files.

    Inputs: ``mat_path`` = ``mpii_human_pose_v1_u12_1.mat`` (struct RELEASE); ``images_dir`` =
    the release's ``images/`` folder (linked as ``out_dir/images``; None: not linked);
    ``valid_h5`` = a pose-hg-train ``valid.h5`` whose (index, person) pairs define the
    validation split (None: the packaged Tompson split).
    Outputs: ``out_dir/annot/{train,valid,test}.h5`` + ``*_images.txt`` (16 MPII joints, float
    coordinates as in the release, head-box ``normalize``), ``out_dir/prepare.json``.
    Validation rows follow the pairs' order, so they line up with published predictions.
    Returns the summary (rows per split, skipped people per split and reason).
    """
    out = Path(out_dir)
    release = _load_release(Path(mat_path))
    annolist = _items(_field(release, "annolist"))
    img_train = np.atleast_1d(np.asarray(_field(release, "img_train"))).reshape(-1)
    if len(img_train) != len(annolist):
        raise HgxError(f"MPII release {mat_path}: img_train has {len(img_train)} entries, "
                       f"annolist {len(annolist)}; the file is damaged, download it again")
    pairs = load_valid_pairs(valid_h5)
    slot = {(int(i), int(p)): k for k, (i, p) in enumerate(pairs)}
    if len(slot) != len(pairs):
        raise HgxError("the validation split lists an (index, person) pair twice; check "
                       f"{valid_h5 or 'the packaged split'}")
    valid_images = {int(i) for i, _ in pairs}

    rows = {s: Rows(16) for s in ("train", "test")}
    valid_rows: list[dict | None] = [None] * len(pairs)
    skipped = {s: Counter() for s in ("train", "valid", "test")}
    seen_valid: set[int] = set()
    bad_points = 0
    for i, entry in enumerate(annolist):
        rects = _items(_field(entry, "annorect"))
        if not rects:
            continue
        name = _text(_field(_field(entry, "image"), "name"))
        train_image = _num(img_train[i]) == 1
        for p, rect in enumerate(rects):
            k = slot.get((i, p))
            split = "valid" if k is not None else "train" if train_image else "test"
            if k is not None:
                seen_valid.add(k)
            if split == "train" and i in valid_images:
                skipped[split]["shares an image with a validation person"] += 1
                continue
            person, n_bad = _mpii_person(rect)
            bad_points += n_bad
            if split == "train" and not person["has_joints"]:
                skipped[split]["no joints"] += 1
                continue
            if person["center"] is None or person["scale"] is None:
                skipped[split]["no objpos/scale"] += 1
                continue
            if name is None:
                skipped[split]["no image name"] += 1
                continue
            # raw values enter here: adjusted once into the stored crop box (formats.crop_box)
            center, scale = crop_box(person["center"], person["scale"])
            row = dict(center=center, scale=scale, part=person["part"],
                       visible=person["visible"], normalize=person["normalize"], imgname=name,
                       index=i, person=p, torsoangle=person["torsoangle"])
            if split == "valid":
                valid_rows[k] = row
            else:
                rows[split].add(**row)

    valid = Rows(16)
    for k, row in enumerate(valid_rows):
        if row is not None:
            valid.add(**row)
        elif k not in seen_valid:
            skipped["valid"]["pair not in the release"] += 1
    rows["valid"] = valid

    notes = []
    if bad_points:
        notes.append(f"{bad_points} annotation points without a usable id/x/y were ignored")
    if any(skipped["valid"].values()):
        notes.append("some validation people are missing: valid.h5 rows no longer line up "
                     "with published validation predictions")
    attrs = {**skeleton_attrs(MPII), "images": _folder_attr(images_dir)}
    return _finish(out, "mpii", {s: rows[s] for s in ("train", "valid", "test")}, attrs,
                   skipped, {"": images_dir}, notes)


def _load_release(path: Path):
    data = _loadmat(path, "MPII release")
    if "RELEASE" not in data:
        keys = ", ".join(k for k in data if not k.startswith("__")) or "none"
        raise HgxError(f"MPII release {path} has no struct RELEASE (it has: {keys}); pass "
                       "mpii_human_pose_v1_u12_1.mat from the official download")
    release = data["RELEASE"]
    missing = [k for k in ("annolist", "img_train") if _field(release, k) is None]
    if missing:
        raise HgxError(f"MPII release {path}: RELEASE lacks {', '.join(missing)}; pass "
                       "mpii_human_pose_v1_u12_1.mat from the official download")
    return release


def _mpii_person(rect) -> tuple[dict, int]:
    """One annorect entry: joints, visibility, centre, scale, head unit, torso angle."""
    part = np.zeros((16, 2))
    visible = np.zeros(16)
    present = np.zeros(16, bool)
    bad = 0
    for pt in _items(_field(_field(rect, "annopoints"), "point")):
        j, x, y = _num(_field(pt, "id")), _num(_field(pt, "x")), _num(_field(pt, "y"))
        if j is None or x is None or y is None or j != int(j) or not 0 <= j < 16:
            bad += 1
            continue
        j = int(j)
        part[j] = (x, y)
        present[j] = True
        v = _num(_field(pt, "is_visible"))
        visible[j] = 1.0 if v is None else float(v != 0)  # absent/empty: visible (see above)
    objpos = _field(rect, "objpos")
    cx, cy = _num(_field(objpos, "x")), _num(_field(objpos, "y"))
    scale = _num(_field(rect, "scale"))
    box = [_num(_field(rect, k)) for k in ("x1", "y1", "x2", "y2")]
    norm = math.nan
    if all(b is not None for b in box):
        norm = HEAD_SC * math.hypot(box[2] - box[0], box[3] - box[1])
    angle = torso_angle(part[6] if present[6] else None, part[7] if present[7] else None)
    return {
        "part": part, "visible": visible, "has_joints": bool(present.any()),
        "center": None if cx is None or cy is None else (cx, cy),
        "scale": scale if scale is not None and scale > 0 else None,
        "normalize": norm, "torsoangle": angle,
    }, bad


# -- walking scipy.io.loadmat(struct_as_record=False, squeeze_me=True) output ------------------
