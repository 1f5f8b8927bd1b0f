"""LSP and LSP-extended: ``joints.mat`` -> train (LSP 1-1000, + LSP-extended) and valid (LSP
1001-2000), framed as pose-hg-train frames an average MPII person (see ``hgx.data.prepare``).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from hgx.data.formats import Rows, skeleton_attrs
from hgx.data.joints import LSP, Skeleton
from hgx.data.prepare.common import (
    _finish,
    _folder_attr,
    _loadmat,
    _mid_torso_angle,
    _torso_size,
)
from hgx.errors import HgxError

LSP_SCALE_FACTOR = 1.43    # crop side / joint-box side of MPII's valid.h5 (module docstring)
LSP_CENTER_DROP = 0.035    # crop centre below the joint-box centre, x side (likewise)

LSP_TRAIN = 1000           # LSP images 1..1000 train, 1001..2000 test


def prepare_lsp(joints_mat, out_dir, images_dir, extended: bool = False, *, extended_mat=None,
                extended_images=None, observer_mat=None,
                scale_factor: float = LSP_SCALE_FACTOR) -> dict:
    """Convert Leeds Sports Pose (LSP) and/or LSP-extended into train/valid files.

    Inputs: ``joints_mat`` = LSP's ``joints.mat`` (3 x 14 x 2000), or with ``extended=True``
    LSP-extended's (14 x 3 x 10000); ``images_dir`` its ``images/`` folder (im0001.jpg...,
    LSP-extended im00001.jpg...). Optionally ``extended_mat``/``extended_images`` add
    LSP-extended's 10000 people to LSP's training half (the usual LSP protocol); image names
    then carry a prefix (``lsp/im0001.jpg``, ``lspet/im00001.jpg``) and ``out_dir/images`` is a
    folder of two links.
    Outputs: ``out_dir/annot/{train,valid}.h5`` (14 LSP joints; valid = LSP images 1001-2000,
    empty for LSP-extended alone), ``*_images.txt``, ``out_dir/prepare.json``.
    Centre/scale from the joint box (see the module docstring); ``normalize`` = torso size.
    LSP's labels are person-centric (attribute ``centric``); ``observer_mat`` (the
    observer-centric labels of the same 2000 images, bearpaw/eval_pose gt/lsp-joints-OC.mat)
    adds ``annot/valid_observercentric.h5``, so `hgx eval` reports both PCKs as eval_pose does.
    """
    out = Path(out_dir)
    joints, is_ext = _load_lsp(Path(joints_mat))
    observer = None
    if observer_mat is not None:
        observer, oc_ext = _load_lsp(Path(observer_mat))
        if is_ext or oc_ext or observer[0].shape != joints[0].shape:
            raise HgxError(f"{observer_mat}: observer-centric labels must be LSP's 3 x 14 x "
                           f"{len(joints[0])} joints of the same images as {joints_mat}")
    if is_ext != bool(extended):
        want = "extended=True (--extended)" if is_ext else "extended=False"
        kind = "LSP-extended (14 x 3 x N)" if is_ext else "LSP (3 x 14 x N)"
        raise HgxError(f"{joints_mat} holds {kind} joints; pass {want} so its visibility flags "
                       "are read the right way round")
    sets = [("lspet" if is_ext else "lsp", joints, is_ext, images_dir)]
    if extended_mat is not None:
        if is_ext:
            raise HgxError("extended_mat adds LSP-extended to LSP: pass LSP's joints.mat first "
                           "(without extended=True)")
        ext_joints, ext_is_ext = _load_lsp(Path(extended_mat))
        if not ext_is_ext:
            raise HgxError(f"{extended_mat} holds LSP (3 x 14 x N) joints, not LSP-extended "
                           "(14 x 3 x N); pass LSP-extended's joints.mat as extended_mat")
        sets.append(("lspet", ext_joints, True, extended_images))
    prefixed = len(sets) > 1

    rows = {"train": Rows(14), "valid": Rows(14)}
    oc_rows = Rows(14)
    skipped = {"train": Counter(), "valid": Counter()}
    for subset, (part, vis), ext, _ in sets:
        digits = 5 if ext else 4
        for i in range(len(part)):
            split = "train" if ext or i < LSP_TRAIN else "valid"
            name = f"im{i + 1:0{digits}d}.jpg"
            if prefixed:
                name = f"{subset}/{name}"
            # LSP-extended is not tightly cropped and its occluded joints are rough: box from the
            # visible ones (as gen_lsp.m); LSP's occluded joints are annotated: all of them.
            row = _box_row(part[i], vis[i], LSP, scale_factor, use_visible=ext)
            if row is None:
                skipped[split]["fewer than 2 joints"] += 1
                continue
            rows[split].add(**row, imgname=name, index=i, person=0)
            if observer is not None and split == "valid" and not ext:
                oc = _box_row(observer[0][i], observer[1][i], LSP, scale_factor, False)
                oc_rows.add(**{**(oc or row), "center": row["center"], "scale": row["scale"]},
                            imgname=name, index=i, person=0)

    notes = []
    n = len(sets[0][1][0])
    if not is_ext and n != 2 * LSP_TRAIN:
        notes.append(f"LSP has 2000 images, {joints_mat} holds {n}: images 1-1000 train, "
                     "the rest valid")
    if not len(rows["valid"]):
        notes.append("no validation people: LSP-extended is a training set; add LSP's "
                     "joints.mat (extended_mat=) to validate on LSP's test half")
    sources = ({"lsp": images_dir, "lspet": extended_images} if prefixed
               else {"": images_dir})
    attrs = {**skeleton_attrs(LSP), "images": _folder_attr(images_dir), "centric": "person"}
    if prefixed:
        attrs["images_lspet"] = _folder_attr(extended_images)
    if observer is not None:
        rows["valid_observercentric"] = oc_rows
        attrs_oc = {**attrs, "centric": "observer"}
        summary = _finish(out, "lsp", rows, attrs, skipped, sources, notes,
                          attrs_by_split={"valid_observercentric": attrs_oc})
        return summary
    return _finish(out, "lsp", rows, attrs, skipped, sources, notes)


def _load_lsp(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], bool]:
    """(part (N,14,2), visible (N,14)), extended?, from an LSP or LSP-extended joints.mat."""
    data = _loadmat(path, "LSP joints")
    if "joints" not in data:
        keys = ", ".join(k for k in data if not k.startswith("__")) or "none"
        raise HgxError(f"LSP joints file {path} has no array 'joints' (it has: {keys}); pass "
                       "the joints.mat of LSP or LSP-extended")
    j = np.asarray(data["joints"], np.float64)
    if j.ndim == 2:
        j = j[..., None]  # squeeze_me on a single person
    if j.ndim == 3 and j.shape[:2] == (3, 14):      # LSP: x, y, occluded
        return (j[:2].transpose(2, 1, 0), 1.0 - j[2].T), False
    if j.ndim == 3 and j.shape[:2] == (14, 3):      # LSP-extended: x, y, visible
        return (j[:, :2].transpose(2, 0, 1), j[:, 2].T.copy()), True
    raise HgxError(f"LSP joints file {path}: 'joints' has shape {j.shape}, expected 3 x 14 x N "
                   "(LSP) or 14 x 3 x N (LSP-extended)")


def _box_row(part: np.ndarray, visible: np.ndarray, skel: Skeleton, factor: float,
             use_visible: bool, drop: float = LSP_CENTER_DROP) -> dict | None:
    """Centre/scale from the joint box, plus the stored joints, normalize and torso angle."""
    present = np.all(np.isfinite(part), axis=-1) & np.any(part != 0, axis=-1)
    part = np.where(present[:, None], part, 0.0)
    visible = np.where(present, (visible > 0).astype(np.float64), 0.0)
    pick = present & (visible > 0) if use_visible else present
    if pick.sum() < 2:
        pick = present
    if pick.sum() < 2:
        return None
    lo, hi = part[pick].min(axis=0), part[pick].max(axis=0)
    size = float(max(hi - lo))
    if not size > 0:
        return None
    center = (lo + hi) / 2 + np.array([0.0, drop * size * factor])
    return dict(center=center, scale=size * factor / 200.0, part=part, visible=visible,
                normalize=_torso_size(part, present, skel),
                torsoangle=_mid_torso_angle(part, present, skel))
