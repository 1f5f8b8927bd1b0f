"""The person box: one convention (annot files hold the crop box), adjusted once where raw
MPII values enter (the release converter, pose-hg-train's raw annot.h5, the synthetic set)."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import SHARED, require_shared
from hgx import options as hopts
from hgx.data import open_split, transforms as T
from hgx.data.cache import region
from hgx.data.dataset import PoseDataset, read_annotations
from hgx.data.formats import crop_box, raw_box
from hgx.data.joints import MPII

REAL_VALID = SHARED / "data/mpii/annot/valid.h5"


def _real():
    require_shared(REAL_VALID)
    with h5py.File(REAL_VALID, "r") as f:
        return {k: f[k][()] for k in f}


def test_real_valid_row0_is_cropped_as_stored():
    """Row 0 (005808361.jpg): a square of side 1179.6 px centred at (966, 410.78), as
    pose-hg-demo and pytorch_stacked_hourglass crop it (before: 1474.5 px at (966, 499.2))."""
    require_shared(REAL_VALID)
    opts = hopts.resolve(None, None, {})
    ds = PoseDataset(read_annotations(REAL_VALID, 16), Path("images"), MPII, opts,
                     augment=False)
    assert ds.annot.imgname[0] == "005808361.jpg"
    center, scale = ds.box(0)
    assert 200 * scale == pytest.approx(1179.62, abs=0.01)
    np.testing.assert_allclose(center, [966.0, 410.777], atol=1e-3)
    m = T.crop_matrix(center, scale, 0.0, opts.input_res)
    half = 200 * scale / 2
    corners = T.apply(m, np.array([[966 - half, 410.777 - half], [966 + half, 410.777 + half]]))
    np.testing.assert_allclose(corners, [[0, 0], [256, 256]], atol=0.01)


def test_real_valid_holds_the_adjusted_box():
    """Evidence that the files hold pose-hg-train's adjusted box: objpos is integral and
    15 s_raw = 12 s, so center_y - 12 scale is an integer on every row; row 0 is the release's
    objpos (966, 340), scale 4.7185 adjusted once."""
    a = _real()
    objpos_y = a["center"][:, 1] - 12 * a["scale"]
    np.testing.assert_allclose(objpos_y, np.round(objpos_y), atol=1e-6)
    center, scale = crop_box((966, 340), 4.7185)
    np.testing.assert_allclose(center, a["center"][0], atol=1e-3)
    assert scale == pytest.approx(a["scale"][0], abs=1e-4)
    back_c, back_s = raw_box(a["center"][0], a["scale"][0])
    np.testing.assert_allclose(back_c, [966, 340], atol=1e-3)
    assert back_s == pytest.approx(4.7185, abs=1e-4)


def test_crop_cache_region_is_centred_on_the_stored_box():
    opts = hopts.resolve(None, None, {"scale_aug": 0.25})
    corner, side, _ = region((500.0, 300.0), 2.0, opts)
    np.testing.assert_allclose(corner + side / 2, [500.0, 300.0])
    assert side == pytest.approx(400 * 2 ** 0.5 * np.sqrt(2))  # largest augmented box, any angle


def _write_raw_annot(root: Path, real: dict) -> dict:
    """pose-hg-train's data/mpii: raw annot.h5 (src/misc/convert_annot.py's keys and forms)
    built from the real valid.h5 (boxes un-adjusted) plus train, istrain=2 and test people,
    and annot/valid.h5 beside it."""
    n_valid = 40
    rows = []
    for r in range(n_valid):
        c, s = raw_box(real["center"][r], real["scale"][r])
        rows.append(dict(index=real["index"][r], person=real["person"][r], name=real["imgname"][r],
                         center=c, scale=s, part=real["part"][r], visible=real["visible"][r],
                         normalize=real["normalize"][r], istrain=1))
    extra = [dict(index=30000, person=0, name=b"900000001.jpg", center=np.array([100.0, 90.0]),
                  scale=1.5, part=np.full((16, 2), 50.0), visible=np.ones(16), normalize=9.0,
                  istrain=1),
             dict(index=30001, person=0, name=b"900000002.jpg", center=np.array([10.0, 9.0]),
                  scale=1.0, part=-np.ones((16, 2)), visible=np.zeros(16), normalize=1.0,
                  istrain=2),
             dict(index=30002, person=1, name=b"900000003.jpg", center=np.array([300.0, 200.0]),
                  scale=3.0, part=-np.ones((16, 2)), visible=np.zeros(16), normalize=1.0,
                  istrain=0)]
    rows = rows[:10] + extra[:2] + rows[10:] + extra[2:]  # file order mixes the splits
    root.mkdir(parents=True)
    (root / "annot").mkdir()
    codes = np.zeros((len(rows), 16))
    for i, r in enumerate(rows):
        name = r["name"].decode() if isinstance(r["name"], bytes) else r["name"]
        codes[i, :len(name)] = [ord(ch) for ch in name]
    with h5py.File(root / "annot.h5", "w") as f:
        f.attrs["name"] = "mpii"
        for key in ("index", "person", "center", "scale", "part", "visible", "normalize",
                    "istrain"):
            f[key] = np.array([r[key] for r in rows], np.float64)
        f["imgname"] = codes
        f["torsoangle"] = np.zeros(len(rows))
        f["multi"] = np.zeros(len(rows))
    with h5py.File(root / "annot" / "valid.h5", "w") as f:
        for key in ("index", "person", "center", "scale", "part", "normalize"):
            f[key] = real[key][:n_valid]
        f["imgname"] = real["imgname"][:n_valid]
    return {"n_valid": n_valid}


def test_pose_hg_train_raw_annot_h5_is_split_and_adjusted_once(tmp_path):
    """A pose-hg-train data/mpii with the raw annot.h5 and annot/valid.h5 (what mpii.lua reads):
    valid = annot/valid.h5's people in order, train = the other istrain 1 rows (istrain 2 in no
    split), test = istrain 0; the box adjusted once at read time gives exactly the boxes of
    pose-hg-train's annot/valid.h5."""
    from hgx.data import posehg

    real = _real()
    root = tmp_path / "data/mpii"
    n_valid = _write_raw_annot(root, real)["n_valid"]
    valid = posehg.read_raw(root, "valid")
    assert len(valid) == n_valid
    np.testing.assert_allclose(valid.center, real["center"][:n_valid], atol=1e-9)
    np.testing.assert_allclose(valid.scale, real["scale"][:n_valid], atol=1e-12)
    assert valid.imgname == [n.decode() for n in real["imgname"][:n_valid]]
    opts = hopts.resolve(None, None, {"dataset": "mpii", "data_dir": str(root)})
    train = open_split(opts, "train")  # annot/train.h5 absent: from annot.h5
    assert train.annot.path.name == "annot.h5" and train.annot.imgname == ["900000001.jpg"]
    np.testing.assert_allclose(train.annot.center[0], [100.0, 90.0 + 15 * 1.5])
    assert train.annot.scale[0] == pytest.approx(1.5 * 1.25)
    test = open_split(opts, "test").annot
    assert test.imgname == ["900000003.jpg"] and not test.present.any()
    assert np.isnan(test.normalize).all() and test.index.tolist() == [30002]
    assert test.person.tolist() == [1]
    assert open_split(opts, "valid").annot.path.name == "valid.h5"  # the adjusted file itself
