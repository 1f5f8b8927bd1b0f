"""Converters from public pose datasets into pose-hg-train's annotation layout.

Each converter reads a dataset's own annotation file and writes, under ``out_dir``::

    annot/train.h5, annot/valid.h5 [, annot/test.h5]   the layout of hgx.data.formats (MPII's
    annot/{split}_images.txt                           valid.h5 keys, self-describing attrs)
    images -> the --images folder                      a symlink: images are never copied
    prepare.json                                       the summary the function returns

and returns a summary dict: ``{"dataset", "out", "splits": {split: rows}, "skipped": {split:
{reason: count}}, "images": {prefix: folder}, "notes": [...]}``. Problems the user can fix
(missing file, missing key, wrong array shape) raise HgxError naming the file and what is wrong.

Conventions, and where they come from:

* MPII (``prepare_mpii``): the release's raw ``objpos`` and ``scale`` are stored as the crop box,
  adjusted once as pose-hg-train does (centre down 15 s, side x 1.25; ``formats.crop_box``,
  umich-vl/pose-hg-train src/util/dataset/mpii.lua:92-94), so the files equal pose-hg-train's
  ``annot/*.h5``; people without them are skipped (pose-hg-train src/misc/convert_annot.py:27-28). Validation =
  Tompson's (index, person) pairs in ``valid.h5`` order; training = the other annotated people
  of training images that hold no validation person (gen_mpii.m's ``loc2`` test: this gives
  pose-hg-train's 22246, whose ``train_images.txt`` shares no image with ``valid_images.txt``);
  test = people of test images with objpos and scale. ``is_visible`` 0 or '0' -> 0, other
  values -> 1, and a point whose ``is_visible`` is absent or empty counts as visible: CPM's
  genJSON.m and gen_mpii.m do so, and pose-hg-train's ``valid.h5`` agrees (every annotated
  upper neck and head top has ``visible = 1``, against about 75% of the other joints).
  ``normalize`` = 0.6 x head-box diagonal (in ``valid.h5`` 200*scale is exactly 10 x
  normalize: the stored crop box is 6 head-box diagonals, MPII's raw scale 4.8 / 200). Joint
  coordinates are kept as the release's floats (pose-hg-train's files hold integers).
* LSP (``prepare_lsp``): the original ``joints.mat`` is 3 x 14 x 2000 with row 3 = 1 for
  *occluded* (gen_lsp.m stores ``1 - joints(3,:,:)`` as visibility); LSP-extended's is
  14 x 3 x 10000 with column 3 = 1 for *visible* (gen_lsp.m uses it as is). The layout is told
  by the shape. Split: LSP images 1-1000 train, 1001-2000 valid (the standard test half);
  LSP-extended all train. The crop box frames an LSP person as pose-hg-train frames an average
  MPII person: side = LSP_SCALE_FACTOR x max(joint-box width, height), centre = joint-box
  centre moved down by LSP_CENTER_DROP x side. Both constants are medians over the 2016 fully
  annotated people of MPII's valid.h5, whose stored box is the crop (formats): crop side /
  joint-box side = 1.4296, crop centre below the joint-box centre by 0.035 x side
  (``tests/test_prepare.py`` re-derives them). Before hgx read boxes as stored, it multiplied
  this box by 1.25 and moved it down 15 s again (LSP crops 1.79 x the joint box). PyraNet frames
  LSP differently (datasets/lsp.lua:67-68: CPM's MPII-like ``scale_provided`` x 368/256 at the
  image centre, bearpaw/pytorch-pose miscs/gen_lsp.m:89-97,151-203); its mixture is below.
* COCO (``prepare_coco``): one row per person with iscrowd 0 and at least ``min_keypoints``
  labelled keypoints. Centre = bbox centre, scale = max(bbox w, bbox h) x COCO_SCALE_FACTOR
  (1.25) / 200: HRNet's crop for a square input (leoxiaobin/deep-high-resolution-net.pytorch
  lib/dataset/coco.py:214-229: the box widened to the aspect ratio, x 1.25, no shift). v = 2 visible, v = 1 occluded (coordinates kept, visible 0),
  v = 0 not labelled -> (0, 0).
* Torso-normalised sets (LSP, COCO) store ``normalize`` = the distance of the skeleton's two
  torso joints (LSP: l-shoulder <-> r-hip, bearpaw/eval_pose utils/eval_pck.m:36), NaN when
  either is missing; ``torsoangle`` uses the hips' and shoulders' midpoints there.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import h5py
import numpy as np

from hgx.data.formats import Rows, crop_box, link_images, raw_box, read_split, \
    skeleton_attrs, torso_angle, write_split
from hgx.data.joints import COCO, LSP, MPII, Skeleton
from hgx.errors import HgxError

__all__ = ["prepare_mpii", "prepare_lsp", "prepare_coco", "mix_mpii_lsp", "describe_custom",
           "load_valid_pairs", "LSP_SCALE_FACTOR", "LSP_CENTER_DROP", "COCO_SCALE_FACTOR"]

HEAD_SC = 0.6              # PCKh unit = 0.6 x head-box diagonal (MPII's util_get_head_size.m)
LSP_SCALE_FACTOR = 1.43    # crop side / joint-box side of MPII's valid.h5 (module docstring)
LSP_CENTER_DROP = 0.035    # crop centre below the joint-box centre, x side (likewise)
COCO_SCALE_FACTOR = 1.25   # HRNet lib/dataset/coco.py:226-227
PYRANET_MIX_SCALE = 410 / 256  # PyraNet datasets/mpii-lsp.lua:69: crop = 1.6 x raw scale
LSP_TRAIN = 1000           # LSP images 1..1000 train, 1001..2000 test
SUMMARY_FILE = "prepare.json"


# ============================================================================================
# MPII
# ============================================================================================

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


# ============================================================================================
# LSP and LSP-extended
# ============================================================================================

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


# ============================================================================================
# COCO
# ============================================================================================

def prepare_coco(json_path, out_dir, images_dir, min_keypoints: int = 1, *, valid_json=None,
                 valid_images=None, scale_factor: float = COCO_SCALE_FACTOR) -> dict:
    """Convert COCO person keypoints into one crop per person.

    Inputs: ``json_path`` = ``person_keypoints_train2017.json`` with ``images_dir`` its image
    folder (``train2017/``); optionally ``valid_json`` = ``person_keypoints_val2017.json`` with
    ``valid_images`` (``val2017/``; None: the same folder as the training images). People with
    iscrowd 1 or fewer than ``min_keypoints`` labelled keypoints are skipped.
    Outputs: ``out_dir/annot/{train,valid}.h5`` (17 COCO joints; valid empty without
    ``valid_json``), ``*_images.txt``, ``out_dir/prepare.json``. ``index`` = COCO image id,
    ``person`` = the annotation's position among its image's annotations in the json. With two
    image folders the names carry a prefix (``train/...``, ``valid/...``) and ``out_dir/images``
    is a folder of two links.
    """
    out = Path(out_dir)
    if min_keypoints < 1:
        raise HgxError(f"min_keypoints must be >= 1, not {min_keypoints}")
    jsons = {"train": json_path}
    if valid_json is not None:
        jsons["valid"] = valid_json
    folders = {"train": images_dir, "valid": valid_images if valid_images is not None
               else images_dir}
    two = (valid_json is not None and valid_images is not None and images_dir is not None
           and _folder_attr(valid_images) != _folder_attr(images_dir))
    rows = {"train": Rows(17), "valid": Rows(17)}
    skipped = {"train": Counter(), "valid": Counter()}
    for split, path in jsons.items():
        prefix = f"{split}/" if two else ""
        for row in _coco_rows(Path(path), min_keypoints, scale_factor, skipped[split]):
            row["imgname"] = prefix + row["imgname"]
            rows[split].add(**row)
    notes = [] if valid_json is not None else [
        "no validation people: pass valid_json (person_keypoints_val2017.json)"]
    sources = {"train": folders["train"], "valid": folders["valid"]} if two \
        else {"": images_dir}
    attrs = {**skeleton_attrs(COCO), "images": _folder_attr(images_dir)}
    if two:
        attrs["images_valid"] = _folder_attr(valid_images)
    return _finish(out, "coco", rows, attrs, skipped, sources, notes)


def _coco_rows(path: Path, min_keypoints: int, scale_factor: float, skipped: Counter):
    if not path.is_file():
        raise HgxError(f"COCO annotation file {path} not found; check the path")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HgxError(f"COCO annotation file {path} cannot be read as JSON ({err})") from None
    missing = [k for k in ("images", "annotations") if not isinstance(data, dict) or k not in data]
    if missing:
        raise HgxError(f"COCO annotation file {path} lacks {', '.join(missing)}; pass a "
                       "person_keypoints_*.json")
    images = {}
    for img in data["images"]:
        if "id" in img and "file_name" in img:
            images[img["id"]] = img["file_name"]
    by_image: dict = {}
    for ann in data["annotations"]:
        by_image.setdefault(ann.get("image_id"), []).append(ann)
    order = [i for i in images if i in by_image] + [i for i in by_image if i not in images]
    position_of = {image_id: k for k, image_id in enumerate(images)}
    for image_id in order:
        for position, ann in enumerate(by_image[image_id]):
            if image_id not in images:
                skipped["image not listed"] += 1
                continue
            if ann.get("iscrowd", 0):
                skipped["crowd"] += 1
                continue
            kp = np.asarray(ann.get("keypoints") or [], np.float64)
            if kp.size != 17 * 3:
                skipped["no keypoints" if kp.size == 0 else "not 17 keypoints"] += 1
                continue
            kp = kp.reshape(17, 3)
            labelled = kp[:, 2] > 0
            if labelled.sum() < min_keypoints:
                skipped[f"fewer than {min_keypoints} keypoints"] += 1
                continue
            bbox = ann.get("bbox")
            if not bbox or len(bbox) != 4 or not (bbox[2] > 0 and bbox[3] > 0):
                skipped["no bbox"] += 1
                continue
            x, y, w, h = (float(v) for v in bbox)
            part = np.where(labelled[:, None], kp[:, :2], 0.0)
            visible = (kp[:, 2] == 2).astype(np.float64)
            yield dict(center=(x + w / 2, y + h / 2), scale=max(w, h) * scale_factor / 200.0,
                       part=part, visible=visible, normalize=_torso_size(part, labelled, COCO),
                       torsoangle=_mid_torso_angle(part, labelled, COCO),
                       imgname=str(images[image_id]), index=_coco_index(image_id, position_of),
                       person=position)


def _coco_index(image_id, position_of: dict) -> float:
    """The COCO image id, or the image's position in the json when the id is not a number."""
    try:
        return float(image_id)
    except (TypeError, ValueError):
        return float(position_of[image_id])


# ============================================================================================
# MPII + LSP (PyraNet's mpii-lsp)
# ============================================================================================

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


# ============================================================================================
# Custom datasets
# ============================================================================================

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


# ============================================================================================
# Shared helpers
# ============================================================================================

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
