"""A pose-hg-train ``data/mpii`` directory read from its raw ``annot.h5``.

pose-hg-train's own loader does not read ``annot/{train,valid,test}.h5``: it reads
``data/mpii/annot.h5`` (every person of the release with MPII's raw ``objpos`` as ``center``
and raw ``scale``, written by src/misc/convert_annot.py) and splits it
(umich-vl/pose-hg-train src/util/dataset/mpii.lua):

* test = the rows with ``istrain == 0`` (mpii.lua:30);
* valid = the rows whose (``index``, ``person``) are, in order, those of ``annot/valid.h5``
  (Tompson's split, mpii.lua:33-55);
* train = the other rows with ``istrain == 1`` (mpii.lua:51-53); ``istrain == 2`` (a training
  image whose person lacks annotations, convert_annot.py:58-59) is in no split.

The raw box is adjusted once here, as mpii.lua:92-94 does at read time (``formats.crop_box``),
so these rows equal those of the ``annot/*.h5`` files, which hold the adjusted box already.
Used when ``DIR/annot/{split}.h5`` is absent and ``DIR/annot.h5`` is present.
"""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from hgx.data.formats import crop_box
from hgx.errors import HgxError

RAW_FILE = "annot.h5"
KEYS = ("index", "person", "imgname", "part", "center", "scale", "normalize", "visible",
        "istrain")


def has_raw(root: Path, split: str) -> bool:
    """``root`` is a pose-hg-train data/mpii directory to read from annot.h5 for ``split``."""
    root = Path(root)
    return (root / RAW_FILE).is_file() and not (root / "annot" / f"{split}.h5").is_file()


def _names(raw: np.ndarray) -> list[str]:
    """convert_annot.py:32-34 stores each name as 16 character codes (floats, 0-padded)."""
    if raw.dtype.kind in "SUO":
        return [n.decode() if isinstance(n, bytes) else str(n) for n in raw.reshape(-1)]
    return ["".join(chr(int(c)) for c in row if int(c) > 0) for row in np.asarray(raw)]


def read_raw(root: Path, split: str):
    """One split of ``root/annot.h5`` as ``dataset.Annotations`` (rows as mpii.lua orders
    them), the box adjusted once."""
    from hgx.data.dataset import Annotations

    root = Path(root)
    path = root / RAW_FILE
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in KEYS if k not in f]
            if missing:
                raise HgxError(f"{path} lacks {', '.join(missing)}; pose-hg-train's raw "
                               "data/mpii/annot.h5 has " + ", ".join(KEYS))
            a = {k: np.asarray(f[k][()]) for k in KEYS}
    except OSError as err:
        raise HgxError(f"{path} cannot be read ({err}); restore pose-hg-train's "
                       "data/mpii/annot.h5") from None
    istrain = a["istrain"].reshape(-1).astype(np.int64)
    pairs = np.stack([a["index"].reshape(-1), a["person"].reshape(-1)], 1).round().astype(np.int64)
    if split == "test":
        rows = np.flatnonzero(istrain == 0)
    else:
        valid_file = root / "annot" / "valid.h5"
        if not valid_file.is_file():
            raise HgxError(f"{valid_file} not found: pose-hg-train takes the validation split "
                           "from it (mpii.lua:38); copy data/mpii/annot/valid.h5 beside annot.h5")
        with h5py.File(valid_file, "r") as f:
            want = np.stack([np.asarray(f["index"]).reshape(-1),
                             np.asarray(f["person"]).reshape(-1)], 1).round().astype(np.int64)
        valid, train, k = [], [], 0
        for i in range(len(pairs)):  # mpii.lua:47-55, in file order
            if k < len(want) and (pairs[i] == want[k]).all():
                valid.append(i)
                k += 1
            elif istrain[i] == 1:
                train.append(i)
        if k < len(want):
            raise HgxError(f"{path}: only {k} of the {len(want)} validation people of "
                           f"{valid_file} were found in order; the two files do not belong "
                           "together")
        rows = np.asarray(valid if split == "valid" else train, np.int64)
    center = np.zeros((len(rows), 2))
    scale = np.zeros(len(rows))
    for k, r in enumerate(rows):
        center[k], scale[k] = crop_box(a["center"][r], float(a["scale"].reshape(-1)[r]))
    part = np.asarray(a["part"][rows], np.float64)
    part = np.where(part > 0, part, 0.0)  # test people hold -1 (convert_annot.py:52)
    norm = np.asarray(a["normalize"].reshape(-1)[rows], np.float64)
    if split == "test":
        norm = np.full(len(rows), np.nan)  # convert_annot.py:54 stores 1: no head box
    visible = np.asarray(a["visible"][rows], np.float64)
    names = _names(a["imgname"])
    return Annotations(path, center, scale, part, visible, norm, [names[r] for r in rows],
                       index=pairs[rows, 0].astype(np.float64),
                       person=pairs[rows, 1].astype(np.float64))
