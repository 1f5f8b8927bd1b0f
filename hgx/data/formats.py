"""Writing pose-hg-train's annotation layout (``annot/{split}.h5``) from any dataset.

One file per split, with exactly the keys of MPII's ``valid.h5`` (pose-hg-train's
``data/mpii/annot``), all ``float64`` except ``imgname`` (fixed-length bytes)::

    center (N, 2)     crop-box centre, image px        scale (N,)   crop-box side / 200 px
    part (N, J, 2)    joint x, y in image px; a missing joint is (0, 0)
    visible (N, J)    1 visible, 0 occluded or missing
    normalize (N,)    the PCK unit: MPII 0.6 x head-box diagonal; torso-normalised datasets
                      the torso size (the skeleton's ``torso`` joints), NaN when unknown
    imgname (N,)      image path relative to ``images/``
    index, person     source image number and person within it (0-based)
    torsoangle (N,)   degrees, pelvis -> thorax from upright, in [-90, 270); 0 when unknown

plus ``{split}_images.txt`` (the image name of every row) beside it. The file's attributes make
it self-describing: ``name`` (dataset name), ``joint_names``, ``flip_pairs`` (P, 2),
``pck_norm`` ('head' or 'torso'), and where known ``torso`` (2,), ``limbs`` (L, 2) with
``limb_sides`` (one of 'l', 'r', 'c' per limb), ``acc_joints``, ``images`` (the image folder the
converter was given), ``centric`` ('person' or 'observer': whose left and right the labels are). Coordinates are stored exactly as the source dataset gives them.

The person box, ONE convention everywhere in hgx: ``center`` and ``scale`` ARE the crop box,
exactly as pose-hg-train's ``data/mpii/annot/{train,valid,test}.h5`` hold them: a square of side
``200 * scale`` px centred at ``center``, cropped as stored (princeton-vl/pose-hg-demo
main.lua:54-56, bearpaw/PyraNet datasets/mpii.lua:62-63, pytorch_stacked_hourglass read these
files the same way). Those files already contain pose-hg-train's adjustment of MPII's raw
``objpos``/``scale`` (centre down by 15 s, side x 1.25, umich-vl/pose-hg-train
src/util/dataset/mpii.lua:92-94): for all 2958 rows of valid.h5 ``center_y - 12 * scale`` is an
integer (objpos is integral, 15 s_raw = 12 s). The adjustment is therefore applied exactly once,
where raw values enter (:func:`crop_box`): ``hgx data prepare mpii`` from the release ``.mat``,
a pose-hg-train ``data/mpii`` directory read from its raw ``annot.h5``
(:mod:`hgx.data.posehg`), and the synthetic generator, whose people carry MPII-style raw
``objpos``/``scale``. Readers never adjust.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from hgx.data.joints import Skeleton
from hgx.errors import HgxError

KEYS = ("center", "imgname", "index", "normalize", "part", "person", "scale", "torsoangle",
        "visible")


def crop_box(objpos, raw_scale: float) -> tuple[np.ndarray, float]:
    """MPII's raw person location -> the stored crop box (``center``, ``scale``): the centre
    moved down by 15 * s and the side multiplied by 1.25, "so cropping is less likely to take
    feet out" (umich-vl/pose-hg-train src/util/dataset/mpii.lua:92-94). Apply once, where raw
    values enter; see the module docstring."""
    c = np.asarray(objpos, np.float64).reshape(2).copy()
    s = float(raw_scale)
    c[1] += 15.0 * s
    return c, 1.25 * s


def raw_box(center, scale: float) -> tuple[np.ndarray, float]:
    """The inverse of :func:`crop_box`: MPII's raw objpos and scale of a stored crop box."""
    s = float(scale) / 1.25
    c = np.asarray(center, np.float64).reshape(2).copy()
    c[1] -= 15.0 * s
    return c, s


class Rows:
    """Collects annotation rows of one split (``J`` joints) and turns them into arrays."""

    def __init__(self, num_joints: int):
        self.num_joints = num_joints
        self._rows: list[tuple] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, *, center, scale, part, visible, normalize, imgname: str, index, person,
            torsoangle: float = 0.0) -> None:
        part = np.asarray(part, np.float64).reshape(self.num_joints, 2)
        visible = np.asarray(visible, np.float64).reshape(self.num_joints)
        self._rows.append((np.asarray(center, np.float64).reshape(2), float(scale), part,
                           visible, float(normalize), str(imgname), float(index),
                           float(person), float(torsoangle)))

    def arrays(self) -> dict[str, np.ndarray]:
        n, j = len(self._rows), self.num_joints
        cols = list(zip(*self._rows)) if self._rows else [()] * 9
        names = [name.encode() for name in cols[5]]
        width = max([len(b) for b in names] + [1])
        return {
            "center": np.array(cols[0], np.float64).reshape(n, 2),
            "scale": np.array(cols[1], np.float64).reshape(n),
            "part": np.array(cols[2], np.float64).reshape(n, j, 2),
            "visible": np.array(cols[3], np.float64).reshape(n, j),
            "normalize": np.array(cols[4], np.float64).reshape(n),
            "imgname": np.array(names, dtype=f"S{width}").reshape(n),
            "index": np.array(cols[6], np.float64).reshape(n),
            "person": np.array(cols[7], np.float64).reshape(n),
            "torsoangle": np.array(cols[8], np.float64).reshape(n),
        }


def skeleton_attrs(skeleton: Skeleton, name: str | None = None) -> dict:
    """The h5 attributes that describe ``skeleton`` (read back by ``describe_custom``)."""
    attrs = {
        "name": name or skeleton.name,
        "joint_names": np.array([s.encode() for s in skeleton.joints]),
        "flip_pairs": np.array(skeleton.flip_pairs, np.int64).reshape(-1, 2),
        "pck_norm": skeleton.pck_norm,
        "limbs": np.array([(a, b) for a, b, _ in skeleton.limbs], np.int64).reshape(-1, 2),
        "limb_sides": "".join(side for _, _, side in skeleton.limbs),
    }
    if skeleton.torso is not None:
        attrs["torso"] = np.array(skeleton.torso, np.int64)
    if skeleton.acc_joints:
        attrs["acc_joints"] = np.array(skeleton.acc_joints, np.int64)
    return attrs


def write_split(annot_dir: Path, split: str, arrays: dict[str, np.ndarray], attrs: dict) -> Path:
    """Write ``{split}.h5`` and ``{split}_images.txt`` into ``annot_dir`` (replacing them).

    The h5 is written to a temporary name and renamed, so an interrupted run never leaves a
    half-written annotation file under the final name.
    """
    annot_dir = Path(annot_dir)
    annot_dir.mkdir(parents=True, exist_ok=True)
    missing = [k for k in KEYS if k not in arrays]
    if missing:  # a programming error, not a user one
        raise ValueError(f"write_split: arrays lack {missing}")
    path = annot_dir / f"{split}.h5"
    tmp = annot_dir / f".{split}.h5.tmp-{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in attrs.items():
                if value is not None:
                    f.attrs[key] = value
            for key in KEYS:
                f.create_dataset(key, data=arrays[key], track_times=False)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    names = "".join(n.decode() + "\n" for n in arrays["imgname"])
    (annot_dir / f"{split}_images.txt").write_text(names)
    return path


def read_split(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """All datasets and attributes of an annotation file (for merging converted sets)."""
    path = Path(path)
    if not path.is_file():
        raise HgxError(f"annotation file {path} not found; run the converter that makes it first")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in KEYS if k not in f]
            if missing:
                raise HgxError(f"annotation file {path} lacks {', '.join(missing)}; regenerate "
                               "it with 'hgx data prepare'")
            arrays = {k: f[k][()] for k in KEYS}
            attrs = {k: f.attrs[k] for k in f.attrs}
    except OSError as err:
        raise HgxError(f"annotation file {path} cannot be read ({err}); regenerate it") from None
    return arrays, attrs


def torso_angle(pelvis, thorax) -> float:
    """pose-hg-train's ``torsoangle``: degrees of pelvis -> thorax from upright, clockwise on
    screen, in [-90, 270); 0 when either point is unknown (None).

    Reproduces MPII's ``valid.h5`` to 1e-13 degrees (0 where pelvis or thorax is missing).
    """
    if pelvis is None or thorax is None:
        return 0.0
    dx, dy = float(thorax[0]) - float(pelvis[0]), float(thorax[1]) - float(pelvis[1])
    angle = math.degrees(math.atan2(dx, -dy))
    return angle + 360.0 if angle < -90.0 else angle


def link_images(out_dir: Path, sources: dict[str, Path | None]) -> dict[str, str]:
    """Make ``out_dir/images`` reach the images without copying them.

    ``sources`` maps an image-name prefix to a folder. One source with prefix ``""``:
    ``out_dir/images`` becomes a symlink to that folder. Several: ``out_dir/images`` is a folder
    of symlinks, one per prefix (``images/lsp -> ...``), and image names carry the prefix.
    Folders given as None are not linked. Returns {prefix: absolute target} of the links made.
    """
    images = Path(out_dir) / "images"
    sources = {k: v for k, v in sources.items() if v is not None}
    if not sources:
        return {}
    targets = {}
    for prefix, folder in sources.items():
        folder = Path(folder).expanduser()
        if not folder.is_dir():
            raise HgxError(f"image folder {folder} not found; pass the folder that holds the "
                           "dataset's images")
        targets[prefix] = str(folder.resolve())
    if list(targets) == [""]:
        _replace_link(images, targets[""])
        return targets
    if images.is_symlink():
        images.unlink()
    if images.exists():
        if not images.is_dir() or any(not p.is_symlink() for p in images.iterdir()):
            raise HgxError(f"{images} exists and is not a folder of links made by hgx; move it "
                           "away or choose another output folder")
    images.mkdir(parents=True, exist_ok=True)
    for prefix, target in targets.items():
        _replace_link(images / prefix, target)
    return targets


def _replace_link(link: Path, target: str) -> None:
    if link.is_symlink():
        link.unlink()
    elif link.exists():
        raise HgxError(f"{link} exists and is not a link; move it away or choose another output "
                       "folder (hgx links the images instead of copying them)")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target, target_is_directory=True)


# -- left and right: person- or observer-centric labels ---------------------------------------
# FLIC and LSP are scored both ways (bearpaw/eval_pose demo_eval_lsp.m:28-60 runs the same PCK
# on gt/lsp-joints-OC.mat and -PC.mat). Person-centric: "left" is the person's left;
# observer-centric: the joint on the viewer's left is "right", as if every person faced the
# camera. pose-hg-train ships FLIC's valid.h5 observer-centric beside valid_personcentric.h5.
CENTRIC = {"person": "_personcentric", "observer": "_observercentric"}


def centricity(path: Path) -> str | None:
    """'person', 'observer' or None (unknown) for an annotation file: the name
    (``*_personcentric.h5``), else its ``centric`` attribute, else pose-hg-train's FLIC files
    (11 joints, no attribute), whose ``{split}.h5`` is the observer-centric one."""
    path = Path(path)
    for centric, suffix in CENTRIC.items():
        if path.stem.endswith(suffix):
            return centric
    try:
        with h5py.File(path, "r") as f:
            if "centric" in f.attrs:
                value = f.attrs["centric"]
                return value.decode() if isinstance(value, bytes) else str(value)
            if "part" in f and f["part"].shape[1:] == (11, 2):
                return "observer"  # pose-hg-train data/flic/annot/{train,valid}.h5
    except OSError:
        return None
    return None


def alternates(path: Path) -> dict[str, Path]:
    """The same people labelled the other way, when a file for it lies beside ``path``
    (``valid.h5`` -> ``valid_personcentric.h5`` / ``valid_observercentric.h5``)."""
    path = Path(path)
    found = {}
    for centric, suffix in CENTRIC.items():
        other = path.with_name(f"{path.stem}{suffix}{path.suffix}")
        if other.is_file() and other != path:
            found[centric] = other
    return found
