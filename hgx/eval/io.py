"""Reading prediction and ground-truth files for evaluation.

Predictions: an HDF5 (``.h5``) or MATLAB (``.mat``, v5 or v7.3) file with one array ``preds``,
either ``(N, J, 2)`` (pytorch-pose, pose-hg-demo) or ``(2, J, N)`` (MATLAB-written HDF5 files
such as Tompson's, which h5py sees transposed). Coordinates are image pixels.

Ground truth, either of:

* pose-hg-train's annotation HDF5 (``annot/valid.h5``): ``part`` (N, J, 2), ``normalize`` (N,);
  a joint stored as (0, 0) is missing (not annotated). ``visible == 0`` does NOT mean missing:
  those joints are annotated (occluded) and the official MPII numbers count them.
* the ``detections_our_format.mat`` layout of the standard PCKh scripts (Tompson, pytorch-pose):
  ``pos_gt_src`` (J, 2, N), ``jnt_missing`` (J, N), ``headboxes_src`` (2, 2, N); the PCKh unit
  is 0.6 x the head-box diagonal.
* LSP's ``joints.mat`` and bearpaw/eval_pose's ``gt/lsp-joints-{OC,PC}.mat``: ``joints``
  (3, 14, N); torso PCK's unit from the joints (``torso_norm``).

For the MPII validation split both give the same people, the same missing joints and head
units equal to 6e-5 px, but ``valid.h5`` truncates neck and head-top to integer pixels (and 13
joints differ where the .mat has a zero coordinate), so tables differ slightly: measured on
the published predictions, at most 0.07 (Head) for Newell's ``valid-ours.h5``, 0.10 for the other
strong models and 0.27 (Head) for a weak one; the .mat is the reference that reproduces the
published tables exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hgx.data.joints import FLIC, LSP, MPII, SKELETONS, Skeleton
from hgx.errors import HgxError

__all__ = ["GroundTruth", "load_preds", "load_gt", "resolve_skeleton", "torso_norm", "torso_unit"]

# PCKh: the head unit is SC_BIAS x the head-box diagonal (MPII's util_get_head_size.m)
SC_BIAS = 0.6

_BY_JOINT_COUNT = {MPII.num_joints: MPII, FLIC.num_joints: FLIC, LSP.num_joints: LSP}


@dataclass
class GroundTruth:
    """Ground-truth joints of N people.

    joints:   (N, J, 2) float64, image pixels.
    missing:  (N, J) bool, True where the joint is not annotated (it never counts).
    norm:     (N,) float64, the per-person distance unit: PCKh head unit (0.6 x head-box
              diagonal) for MPII, torso size (distance of the skeleton's two torso joints) for
              FLIC/LSP; NaN where it cannot be computed (that person's joints don't count).
    skeleton: skeleton name ('mpii', 'flic', 'lsp').
    """

    joints: np.ndarray
    missing: np.ndarray
    norm: np.ndarray
    skeleton: str
    path: str | None = None

    @property
    def num_people(self) -> int:
        return int(self.joints.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.joints.shape[1])


def resolve_skeleton(skeleton: str | Skeleton | None, num_joints: int, where: str = "") -> Skeleton:
    """The Skeleton named (or given), else the one with ``num_joints`` joints."""
    suffix = f" in {where}" if where else ""
    if skeleton is None:
        try:
            return _BY_JOINT_COUNT[num_joints]
        except KeyError:
            known = ", ".join(f"{n} ({s.name})" for n, s in sorted(_BY_JOINT_COUNT.items()))
            raise HgxError(
                f"cannot tell the skeleton from {num_joints} joints{suffix}: known joint counts "
                f"are {known}; pass the skeleton explicitly"
            ) from None
    if isinstance(skeleton, str):
        try:
            skel = SKELETONS[skeleton.lower()]
        except KeyError:
            raise HgxError(
                f"unknown skeleton {skeleton!r}: choose one of {', '.join(sorted(SKELETONS))}"
            ) from None
    else:
        skel = skeleton
    if skel.num_joints != num_joints:
        raise HgxError(
            f"skeleton {skel.name!r} has {skel.num_joints} joints but the data{suffix} has "
            f"{num_joints}: pass the matching skeleton or file"
        )
    return skel


def _is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(path))
    except OSError:
        return False


def _read_arrays(path: str | Path, what: str) -> dict[str, np.ndarray]:
    """All top-level numeric arrays of an HDF5 or MATLAB file (MATLAB v7.3 is HDF5)."""
    path = Path(path)
    if not path.exists():
        raise HgxError(f"{what} file {path} does not exist: check the path")
    if path.is_dir():
        raise HgxError(f"{what} file {path} is a directory: pass an .h5 or .mat file")
    if _is_hdf5(path):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                return {k: np.asarray(f[k][()]) for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        except OSError as err:
            raise HgxError(f"{what} file {path} cannot be read as HDF5 ({err}): re-export it") from None
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path))
    except Exception as err:  # scipy raises ValueError/TypeError/... on foreign files
        raise HgxError(
            f"{what} file {path} is neither HDF5 nor a MATLAB .mat file ({type(err).__name__}: "
            f"{err}): save it with h5py or scipy.io.savemat"
        ) from None
    return {k: np.asarray(v) for k, v in data.items() if not k.startswith("__")}


def _to_float(arr: np.ndarray, path: Path | str, key: str, what: str) -> np.ndarray:
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise HgxError(
            f"{what} file {path}: '{key}' holds {arr.dtype} data, not numbers: re-export it"
        ) from None


def load_preds(path: str | Path) -> np.ndarray:
    """Predicted joints as an (N, J, 2) float64 array of image pixels.

    Accepts ``preds`` stored as (N, J, 2) or (2, J, N); the layout is told by which axis has
    size 2 (an ambiguous (2, J, 2) array, i.e. two people, is read as (N, J, 2)). NaN
    coordinates are kept (they count as wrong).
    """
    data = _read_arrays(path, "predictions")
    if "preds" not in data and "pred" in data and np.asarray(data["pred"]).dtype.kind in "iuf":
        data["preds"] = data["pred"]  # bearpaw/eval_pose results/*/pred_keypoints_*.mat
    if "preds" not in data:
        keys = ", ".join(sorted(data)) or "none"
        raise HgxError(
            f"predictions file {path} has no 'preds' array (it has: {keys}): save the "
            f"predictions as 'preds' of shape (N, J, 2)"
        )
    preds = _to_float(data["preds"], path, "preds", "predictions")
    if preds.ndim == 3 and preds.shape[2] == 2:
        out = preds
    elif preds.ndim == 3 and preds.shape[0] == 2:
        out = preds.transpose(2, 1, 0)
    else:
        raise HgxError(
            f"predictions file {path}: 'preds' has shape {preds.shape}, expected (N, J, 2) or "
            f"(2, J, N)"
        )
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise HgxError(f"predictions file {path}: 'preds' is empty (shape {preds.shape})")
    return np.ascontiguousarray(out)


def annotated_missing(part: np.ndarray) -> np.ndarray:
    """Evaluation's "not annotated": a joint stored as (0, 0). On MPII's valid.h5 this is
    exactly detections_our_format.mat's ``jnt_missing`` (the official kit's), where x <= 0
    (pose-hg-train's training rule, ``Annotations.present``) would drop one more joint.
    Every evaluation ground truth, a file or a dataset split, uses this rule."""
    return np.all(np.asarray(part) == 0, axis=-1)


def torso_norm(joints: np.ndarray, missing: np.ndarray, skel: Skeleton) -> np.ndarray:
    """The distance of the skeleton's two torso joints; NaN where either is missing."""
    a, b = skel.torso
    norm = np.linalg.norm(joints[:, a] - joints[:, b], axis=-1)
    bad = missing[:, a] | missing[:, b] | ~(norm > 0)
    return np.where(bad, np.nan, norm)


def torso_unit(joints: np.ndarray, missing: np.ndarray, skel: Skeleton,
               normalize: np.ndarray | None) -> np.ndarray:
    """Torso PCK's unit: the file's ``normalize`` where it has one (pose-hg-train
    src/pypose/eval.py:42-47 divides FLIC distances by it), else :func:`torso_norm`."""
    computed = torso_norm(joints, missing, skel)
    if normalize is None:
        return computed
    normalize = np.asarray(normalize, np.float64).reshape(-1)
    stored = np.isfinite(normalize) & (normalize > 0)
    return np.where(stored, normalize, computed)


def load_gt(path: str | Path, skeleton: str | Skeleton | None = None) -> GroundTruth:
    """Ground truth from a pose-hg-train annotation h5 or a ``detections_our_format.mat``.

    The skeleton is told by the joint count (16 MPII, 11 FLIC, 14 LSP) unless given.
    ``norm`` is the annotation's head unit for head-normalised skeletons (MPII) and the torso
    size computed from the ground-truth joints for torso-normalised ones (FLIC, LSP).
    """
    data = _read_arrays(path, "ground-truth")
    head_norm = None
    if "part" in data:
        joints = _to_float(data["part"], path, "part", "ground-truth")
        if joints.ndim != 3 or joints.shape[2] != 2:
            raise HgxError(
                f"ground-truth file {path}: 'part' has shape {joints.shape}, expected (N, J, 2)"
            )
        missing = annotated_missing(joints)
        if "normalize" in data:
            head_norm = _to_float(data["normalize"], path, "normalize", "ground-truth").reshape(-1)
    elif "pos_gt_src" in data:
        pos = _to_float(data["pos_gt_src"], path, "pos_gt_src", "ground-truth")
        if pos.ndim != 3 or pos.shape[1] != 2:
            raise HgxError(
                f"ground-truth file {path}: 'pos_gt_src' has shape {pos.shape}, expected (J, 2, N)"
            )
        joints = pos.transpose(2, 0, 1)
        if "jnt_missing" in data:
            jm = np.asarray(data["jnt_missing"])
            if jm.shape != (joints.shape[1], joints.shape[0]):
                raise HgxError(
                    f"ground-truth file {path}: 'jnt_missing' has shape {jm.shape}, expected "
                    f"{(joints.shape[1], joints.shape[0])}"
                )
            missing = jm.T.astype(bool)
        else:
            missing = np.all(joints == 0, axis=-1)
        if "headboxes_src" in data:
            hb = _to_float(data["headboxes_src"], path, "headboxes_src", "ground-truth")
            if hb.shape != (2, 2, joints.shape[0]):
                raise HgxError(
                    f"ground-truth file {path}: 'headboxes_src' has shape {hb.shape}, expected "
                    f"(2, 2, {joints.shape[0]})"
                )
            head_norm = SC_BIAS * np.linalg.norm(hb[1] - hb[0], axis=0)
    elif "joints" in data:
        # LSP's joints.mat and bearpaw/eval_pose's gt/*.mat: (3 or 2, J, N), x, y[, flag];
        # every joint annotated (eval_pose utils/eval_pck.m:26-48 has no missing joints)
        j = _to_float(data["joints"], path, "joints", "ground-truth")
        if j.ndim != 3 or j.shape[0] not in (2, 3):
            raise HgxError(
                f"ground-truth file {path}: 'joints' has shape {j.shape}, expected (3, J, N) as "
                f"LSP's joints.mat and eval_pose's gt files"
            )
        joints = j[:2].transpose(2, 1, 0)
        missing = np.zeros(joints.shape[:2], bool)
    else:
        keys = ", ".join(sorted(data)) or "none"
        raise HgxError(
            f"ground-truth file {path} has neither 'part' (pose-hg-train annotation h5), "
            f"'pos_gt_src' (detections_our_format.mat) nor 'joints' (LSP / eval_pose) (it has: "
            f"{keys}): pass an annotation file"
        )
    missing = missing | ~np.all(np.isfinite(joints), axis=-1)
    skel = resolve_skeleton(skeleton, joints.shape[1], str(path))

    if skel.pck_norm == "head":
        if head_norm is None:
            raise HgxError(
                f"ground-truth file {path} has no head size ('normalize' or 'headboxes_src'), "
                f"which PCKh needs: use an annotation file that has it"
            )
        if head_norm.shape != (joints.shape[0],):
            raise HgxError(
                f"ground-truth file {path}: head size has {head_norm.size} values for "
                f"{joints.shape[0]} people"
            )
        norm = np.where(head_norm > 0, head_norm, np.nan)
    else:
        norm = torso_unit(joints, missing, skel, head_norm)
    return GroundTruth(
        joints=np.ascontiguousarray(joints),
        missing=missing,
        norm=norm.astype(np.float64),
        skeleton=skel.name,
        path=str(path),
    )
