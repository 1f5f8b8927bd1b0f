"""COCO single person: one crop per annotated (non-crowd) person, 17 joints, HRNet's framing.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from hgx.data.formats import Rows, skeleton_attrs
from hgx.data.joints import COCO
from hgx.data.prepare.common import _finish, _folder_attr, _mid_torso_angle, _torso_size
from hgx.errors import HgxError

COCO_SCALE_FACTOR = 1.25   # HRNet lib/dataset/coco.py:226-227


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
