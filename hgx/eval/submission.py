"""The MPII test-server submission: ``pred_keypoints_mpii.mat``.

MPII's evaluation kit (anibali/eval-mpii-pose, a copy of the official scripts) reads a ``.mat``
with one variable ``pred``: the release's ``RELEASE.annolist`` restricted to the test images,
``pred = RELEASE.annolist(RELEASE.img_train == 0)``, one entry per test IMAGE in release order,
where each predicted person's rect gains ``annopoints.point``, a 1x16 struct with fields ``x``,
``y`` and ``id`` (0-based joint id), and every other field of the rects (``objpos``, ``scale``)
stays as the release has it (prepareTestResults.m:57-91, 104). evaluatePCKh.m:37-40 loads it,
asserts ``length(annolist_test) == length(pred)`` and flattens it against the release's
single-person test list. Row r of test.h5 is the person ``pred(index_r + 1).annorect(person_r +
1)`` (prepareTestResults.m:21-22, 79): ``index`` and ``person`` are 0-based.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from hgx.errors import HgxError

FILE_NAME = "pred_keypoints_mpii.mat"


def load_release(path: Path):
    """``(annolist, img_train)`` of ``mpii_human_pose_v1_u12_1.mat`` as scipy's record arrays
    (``struct_as_record=True``, not squeezed), ready to be written back unchanged."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise HgxError(f"--mpii-release {path}: file not found; pass MPII's "
                       "mpii_human_pose_v1_u12_1.mat (from the dataset's download page)")
    try:
        data = scipy.io.loadmat(str(path), struct_as_record=True, squeeze_me=False)
    except NotImplementedError:
        raise HgxError(f"--mpii-release {path} is a MATLAB v7.3 file; pass the original "
                       "download (v7)") from None
    except Exception as err:  # scipy raises many kinds on foreign files
        raise HgxError(f"--mpii-release {path} cannot be read as a MATLAB file ({err}); "
                       "download it again") from None
    if "RELEASE" not in data:
        raise HgxError(f"--mpii-release {path} has no struct RELEASE; pass "
                       "mpii_human_pose_v1_u12_1.mat")
    release = data["RELEASE"].reshape(-1)[0]
    names = release.dtype.names or ()
    if "annolist" not in names or "img_train" not in names:
        raise HgxError(f"--mpii-release {path}: RELEASE lacks annolist or img_train; pass "
                       "mpii_human_pose_v1_u12_1.mat")
    annolist = release["annolist"]
    img_train = np.asarray(release["img_train"]).reshape(-1)
    if annolist.size != img_train.size:
        raise HgxError(f"--mpii-release {path}: annolist has {annolist.size} entries, img_train "
                       f"{img_train.size}; the file is damaged, download it again")
    return annolist, img_train


def _points(xy: np.ndarray) -> np.ndarray:
    """``struct('point', struct('x', x, 'y', y, 'id', id))`` with 1xJ cells of scalars."""
    j = len(xy)
    point = np.zeros((1, j), dtype=[("x", object), ("y", object), ("id", object)])
    for k in range(j):
        point[0, k] = (np.array([[float(xy[k, 0])]]), np.array([[float(xy[k, 1])]]),
                       np.array([[float(k)]]))
    annopoints = np.zeros((1, 1), dtype=[("point", object)])
    annopoints[0, 0]["point"] = point
    return annopoints


def _with_annopoints(rects: np.ndarray) -> np.ndarray:
    """The image's rect struct array, with an ``annopoints`` field added when it has none
    (MATLAB adds the field to every rect of the array on assignment; the others hold [])."""
    names = rects.dtype.names or ()
    if "annopoints" in names:
        return rects.copy()
    out = np.zeros(rects.shape, dtype=[(n, object) for n in names] + [("annopoints", object)])
    for idx in np.ndindex(rects.shape):
        for n in names:
            out[idx][n] = rects[idx][n]
        out[idx]["annopoints"] = np.zeros((0, 0))
    return out


def build(annolist: np.ndarray, img_train: np.ndarray, index: np.ndarray, person: np.ndarray,
          preds: np.ndarray) -> np.ndarray:
    """``pred``: the test images' annolist entries with the predictions in place."""
    flat = annolist.reshape(-1).copy()
    index = np.asarray(index).round().astype(np.int64)
    person = np.asarray(person).round().astype(np.int64)
    if len(index) != len(preds) or len(person) != len(preds):
        raise HgxError(f"{len(preds)} predictions but {len(index)} index/person rows")
    patched: dict[int, np.ndarray] = {}
    for row, (i, p) in enumerate(zip(index, person)):
        if not 0 <= i < flat.size:
            raise HgxError(f"test row {row}: index {i} is outside the release's {flat.size} "
                           "images; the annotation file does not belong to this release")
        if img_train[i] != 0:
            raise HgxError(f"test row {row}: release image {i} is a training image "
                           "(img_train = 1); predictions must be of the test split")
        if i not in patched:
            rects = flat[i]["annorect"]
            if not isinstance(rects, np.ndarray) or rects.dtype.names is None:
                raise HgxError(f"release image {i} has no annorect; the annotation file does "
                               "not belong to this release")
            patched[i] = _with_annopoints(rects)
        rects = patched[i]
        if not 0 <= p < rects.size:
            raise HgxError(f"test row {row}: person {p} of release image {i}, which has "
                           f"{rects.size} rects")
        rects.reshape(-1)[p]["annopoints"] = _points(np.asarray(preds[row], np.float64))
    for i, rects in patched.items():
        entry = flat[i].copy()
        entry["annorect"] = rects
        flat[i] = entry
    test = flat[img_train.reshape(-1) == 0]
    return test.reshape(1, -1)


def write(path: Path, release_path: Path, index: np.ndarray, person: np.ndarray,
          preds: np.ndarray) -> int:
    """Write ``pred_keypoints_mpii.mat``; returns the number of test images in it."""
    import scipy.io

    from hgx.files import atomic_write

    annolist, img_train = load_release(release_path)
    pred = build(annolist, img_train, index, person, preds)
    buf = io.BytesIO()
    scipy.io.savemat(buf, {"pred": pred}, do_compression=True, format="5")
    atomic_write(Path(path), buf.getvalue())
    return int(pred.size)
