"""PyraNet's ``mpii-lsp`` mixture: MPII train + LSP train (in MPII's 16 joints) for training, LSP's
test half for validation, framed as PyraNet frames it.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from hgx.data.formats import raw_box, read_split, skeleton_attrs
from hgx.data.joints import MPII, Skeleton
from hgx.data.prepare.common import _finish
from hgx.errors import HgxError

PYRANET_MIX_SCALE = 410 / 256  # PyraNet datasets/mpii-lsp.lua:69: crop = 1.6 x raw scale

# LSP joint -> MPII joint; MPII's pelvis and thorax are the hips' and shoulders' midpoints
LSP_TO_MPII = (0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15, 8, 9)


def lsp_to_mpii(part: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LSP rows (N, 14, 2), (N, 14) in MPII's 16-joint order (bearpaw's gen_lsp.m mapping).

    Neck -> upper neck, head top -> head top; pelvis (thorax) = midpoint of the hips
    (shoulders) when both are present, visible when both are.
    """
    n = len(part)
    out = np.zeros((n, 16, 2))
    vis = np.zeros((n, 16))
    out[:, LSP_TO_MPII] = part
    vis[:, LSP_TO_MPII] = visible
    present = np.any(part != 0, axis=-1)
    for mid, (a, b) in ((6, (2, 3)), (7, (8, 9))):
        both = present[:, a] & present[:, b]
        out[both, mid] = (part[both, a] + part[both, b]) / 2
        vis[:, mid] = (both & (visible[:, a] > 0) & (visible[:, b] > 0)).astype(np.float64)
    return out, vis


def mix_mpii_lsp(mpii_dir, lsp_dir, out_dir) -> dict:
    """PyraNet's ``mpii-lsp`` mixture from two converted folders, in MPII's 16-joint order.

    Inputs: ``mpii_dir`` (from prepare_mpii) and ``lsp_dir`` (from prepare_lsp, with or without
    LSP-extended). Outputs under ``out_dir``: ``annot/train.h5`` = MPII train + LSP train
    (LSP mapped by ``lsp_to_mpii``), ``annot/valid.h5`` = LSP's valid (its test half, as
    PyraNet validates), image names prefixed ``mpii/`` and ``lsp/`` with ``out_dir/images`` a
    folder of links to the two image folders. Every row is framed as PyraNet frames this
    mixture: a crop of 410/256 (1.60) x the raw (MPII-like) scale centred at the raw objpos
    (bearpaw/PyraNet datasets/mpii-lsp.lua:68-69, its json keeps objpos and scale unadjusted,
    datasets/mpii-lsp-gen.lua:89-93), the raw values being those the rows' stored boxes were
    adjusted from (``formats.raw_box``): 1.28 x the side of the mpii dataset's crops. The files
    say ``pck_norm='torso'`` (LSP's PCK, torso = l-shoulder <-> r-hip, eval_pose
    utils/eval_pck.m:36): LSP rows carry the torso size in ``normalize``, MPII rows keep their
    head unit (training does not use it).
    """
    mpii_dir, lsp_dir, out = Path(mpii_dir), Path(lsp_dir), Path(out_dir)
    mpii_train, _ = read_split(mpii_dir / "annot" / "train.h5")
    if mpii_train["part"].shape[1] != 16:
        raise HgxError(f"{mpii_dir / 'annot' / 'train.h5'} has {mpii_train['part'].shape[1]} "
                       "joints, MPII has 16; pass the folder prepare_mpii wrote")
    parts = {}
    for split in ("train", "valid"):
        arrays, _ = read_split(lsp_dir / "annot" / f"{split}.h5")
        if arrays["part"].shape[1] != 14:
            raise HgxError(f"{lsp_dir / 'annot' / f'{split}.h5'} has "
                           f"{arrays['part'].shape[1]} joints, LSP has 14; pass the folder "
                           "prepare_lsp wrote")
        arrays["part"], arrays["visible"] = lsp_to_mpii(arrays["part"], arrays["visible"])
        parts[split] = arrays
    rows = {"train": _concat([_prefixed(parts["train"], "lsp/"), _prefixed(mpii_train, "mpii/")]),
            "valid": _prefixed(parts["valid"], "lsp/")}
    rows = {split: _pyranet_framing(arrays) for split, arrays in rows.items()}
    mixed = Skeleton(name="mpii-lsp", joints=MPII.joints, flip_pairs=MPII.flip_pairs,
                     limbs=MPII.limbs, pck_norm="torso", torso=(13, 2),
                     acc_joints=MPII.acc_joints)
    sources = {}
    for prefix, folder in (("mpii", mpii_dir / "images"), ("lsp", lsp_dir / "images")):
        sources[prefix] = folder if folder.is_dir() else None
    notes = [f"{folder} not found: images/{p} not linked"
             for p, folder in (("mpii", mpii_dir / "images"), ("lsp", lsp_dir / "images"))
             if sources[p] is None]
    if not len(rows["valid"]["scale"]):
        notes.append("no validation people: the LSP folder has no valid rows")
    attrs = {**skeleton_attrs(mixed), "images": None}
    skipped = {"train": Counter(), "valid": Counter()}
    return _finish(out, "mpii-lsp", rows, attrs, skipped, sources, notes)


def _pyranet_framing(arrays: dict) -> dict:
    """Stored crop boxes -> PyraNet's mixture framing (see mix_mpii_lsp)."""
    center, scale = arrays["center"].copy(), arrays["scale"].copy()
    for i in range(len(scale)):
        objpos, raw = raw_box(center[i], scale[i])
        center[i], scale[i] = objpos, PYRANET_MIX_SCALE * raw
    return {**arrays, "center": center, "scale": scale}


def _prefixed(arrays: dict, prefix: str) -> dict:
    names = [prefix.encode() + n for n in arrays["imgname"]]
    width = max([len(n) for n in names] + [1])
    return {**arrays, "imgname": np.array(names, dtype=f"S{width}")}


def _concat(parts: list[dict]) -> dict:
    out = {}
    for key in parts[0]:
        if key == "imgname":
            names = [n for p in parts for n in p[key]]
            width = max([len(n) for n in names] + [1])
            out[key] = np.array(names, dtype=f"S{width}")
        else:
            out[key] = np.concatenate([p[key] for p in parts])
    return out
