"""Converters into pose-hg-train's annotation layout: MPII release, LSP, COCO, mixtures, custom."""
from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import require_shared
import scipy.io as sio

from hgx.data import prepare
from hgx.data.dataset import read_annotations
from hgx.data.formats import KEYS, torso_angle
from hgx.data.joints import COCO, LSP, MPII
from hgx.errors import HgxError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
REAL_VALID = SHARED / "data/mpii/annot/valid.h5"
E = np.zeros((0, 0))  # MATLAB's []
RECT = ["x1", "y1", "x2", "y2", "annopoints", "scale", "objpos"]
POINT = ["id", "x", "y", "is_visible"]


def _real_valid():
    require_shared(REAL_VALID)
    with h5py.File(REAL_VALID, "r") as f:
        return {k: f[k][()] for k in f}


def _read(path: Path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


# --------------------------------------------------------------------------------------------
# MPII: a release .mat in the official structure, written with scipy.io.savemat
# --------------------------------------------------------------------------------------------

def _structs(items: list[dict], fields: list[str]) -> np.ndarray:
    """A MATLAB 1xN struct array; fields an item lacks are [] (as in the release)."""
    arr = np.zeros((1, len(items)), dtype=[(f, object) for f in fields])
    for i, item in enumerate(items):
        for f in fields:
            arr[f][0, i] = item.get(f, E)
    return arr


def _points(*pts) -> np.ndarray:
    return _structs([dict(id=j, x=x, y=y, is_visible=v) for j, x, y, v in pts], POINT)


# image 1, person 0: float joints, every form of is_visible (1, '0', [], '1'), pelvis + thorax
P1 = [(0, 10.5, 220.25, 1), (6, 50.75, 150.5, "0"), (7, 55.25, 80.0, E), (9, 60.5, 20.125, "1")]


def _release(path: Path) -> None:
    head = dict(x1=40.0, y1=10.0, x2=70.5, y2=45.0)
    annolist = [
        # 0 train: two people; neither is in the packaged valid list (index 0 is not)
        dict(image=dict(name="000000000.jpg"), annorect=_structs([
            dict(**head, annopoints=dict(point=_points(*P1)), scale=2.0, objpos=dict(x=5., y=6.)),
            dict(annopoints=dict(point=_points((3, 7.5, 8.5, 1))), scale=1.0,
                 objpos=dict(x=7., y=8.))], RECT)),
        # 1 train: a full person and one without objpos (pose-hg-train skips it)
        dict(image=dict(name="000000001.jpg"), annorect=_structs([
            dict(**head, annopoints=dict(point=_points(*P1)), scale=2.5,
                 objpos=dict(x=55.5, y=120.25)),
            dict(annopoints=dict(point=_points((0, 1.0, 2.0, 1))), scale=1.0)], RECT)),
        # 2 train: one person (a bare struct after squeeze_me), one point, no head box fields
        dict(image=dict(name="000000002.jpg"), annorect=_structs([
            dict(annopoints=dict(point=_points((12, 33.5, 44.5, 0))), scale=1.5,
                 objpos=dict(x=30., y=40.))], ["annopoints", "scale", "objpos"])),
        # 3 train: annotated rectangle without points
        dict(image=dict(name="000000003.jpg"), annorect=_structs([
            dict(scale=1.0, objpos=dict(x=1., y=1.))], RECT)),
        # 4 test: one located person, one with scale only
        dict(image=dict(name="000000004.jpg"), annorect=_structs([
            dict(scale=3.25, objpos=dict(x=300.5, y=200.5)), dict(scale=1.0)],
            ["scale", "objpos"])),
        # 5: no people at all
        dict(image=dict(name="000000005.jpg"), annorect=E),
        # 6 train: (6, 0) is the first pair of Tompson's validation split; (6, 1) is not
        dict(image=dict(name="000000006.jpg"), annorect=_structs([
            dict(**head, annopoints=dict(point=_points(*P1)), scale=4.0,
                 objpos=dict(x=90., y=91.)),
            dict(annopoints=dict(point=_points((5, 9.0, 9.5, 1))), scale=1.0,
                 objpos=dict(x=9., y=9.))], RECT)),
    ]
    release = dict(annolist=_structs(annolist, ["image", "annorect"]),
                   img_train=np.array([[1, 1, 1, 1, 0, 0, 1]], np.uint8),
                   single_person=E, act=E, video_list=E)
    sio.savemat(path, {"RELEASE": release})



@pytest.fixture(scope="module")
def mpii(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpii")
    _release(root / "release.mat")
    (root / "images").mkdir()
    summary = prepare.prepare_mpii(root / "release.mat", root / "out", root / "images")
    return root, summary


def test_mpii_splits_and_skipped_people(mpii):
    root, summary = mpii
    assert summary["dataset"] == "mpii"
    assert summary["splits"] == {"train": 4, "valid": 1, "test": 1}
    assert summary["skipped"]["train"] == {
        "no joints": 1, "no objpos/scale": 1, "shares an image with a validation person": 1}
    assert summary["skipped"]["test"] == {"no objpos/scale": 1}
    # the packaged split has 2958 pairs; only (6, 0) exists in this small release
    assert summary["skipped"]["valid"] == {"pair not in the release": 2957}
    assert json.loads((root / "out" / "prepare.json").read_text()) == summary


def test_mpii_membership_rows_and_floats(mpii):
    root, _ = mpii
    out = root / "out/annot"
    tr, attrs = _read(out / "train.h5")
    assert [(int(i), int(p)) for i, p in zip(tr["index"], tr["person"])] == \
        [(0, 0), (0, 1), (1, 0), (2, 0)]
    assert list(tr["imgname"]) == [b"000000000.jpg", b"000000000.jpg", b"000000001.jpg",
                                   b"000000002.jpg"]
    row = 2  # image 1, person 0: the raw objpos (55.5, 120.25) and scale 2.5 stored as the
    # crop box, adjusted once as pose-hg-train's mpii.lua:92-94 (centre +15 s, side x 1.25)
    np.testing.assert_array_equal(tr["center"][row], [55.5, 120.25 + 15 * 2.5])
    assert tr["scale"][row] == 2.5 * 1.25
    for j, x, y, _ in P1:
        np.testing.assert_array_equal(tr["part"][row, j], [x, y])  # floats kept
    others = [j for j in range(16) if j not in {p[0] for p in P1}]
    assert not tr["part"][row, others].any() and not tr["visible"][row, others].any()
    # is_visible 1 -> 1, '0' -> 0, [] (absent) -> 1, '1' -> 1
    np.testing.assert_array_equal(tr["visible"][row, [0, 6, 7, 9]], [1, 0, 1, 1])
    assert tr["normalize"][row] == pytest.approx(0.6 * math.hypot(30.5, 35.0))
    assert tr["torsoangle"][row] == pytest.approx(
        math.degrees(math.atan2(55.25 - 50.75, -(80.0 - 150.5))))
    # a bare struct (one person, one point), no head box: normalize NaN, no torso: angle 0
    np.testing.assert_array_equal(tr["part"][3, 12], [33.5, 44.5])
    assert tr["visible"][3, 12] == 0 and math.isnan(tr["normalize"][3])
    assert tr["torsoangle"][3] == 0

    va, _ = _read(out / "valid.h5")
    assert (int(va["index"][0]), int(va["person"][0])) == (6, 0)
    assert va["scale"][0] == 4.0 * 1.25 and va["imgname"][0] == b"000000006.jpg"
    te, _ = _read(out / "test.h5")
    assert (int(te["index"][0]), int(te["person"][0])) == (4, 0)
    np.testing.assert_array_equal(te["center"][0], [300.5, 200.5 + 15 * 3.25])
    assert te["scale"][0] == 3.25 * 1.25 and not te["part"].any()
    assert math.isnan(te["normalize"][0])


def test_mpii_layout_is_read_by_hgx(mpii):
    root, _ = mpii
    out = root / "out"
    assert (out / "images").is_symlink()
    assert (out / "images").resolve() == (root / "images").resolve()
    for split in ("train", "valid", "test"):
        arrays, attrs = _read(out / "annot" / f"{split}.h5")
        assert sorted(arrays) == sorted(KEYS)
        assert all(arrays[k].dtype == np.float64 for k in KEYS if k != "imgname")
        assert arrays["imgname"].dtype.kind == "S"
        assert attrs["name"] == "mpii"
        assert [n.decode() for n in attrs["joint_names"]] == list(MPII.joints)
        annot = read_annotations(out / "annot" / f"{split}.h5", joints=16)
        listed = (out / "annot" / f"{split}_images.txt").read_text().splitlines()
        assert listed == annot.imgname


def test_mpii_layout_matches_real_valid(mpii):
    real = _real_valid()
    root, _ = mpii
    ours, _ = _read(root / "out/annot/valid.h5")
    assert sorted(ours) == sorted(real)
    for key in real:
        assert ours[key].shape[1:] == real[key].shape[1:] and \
            ours[key].dtype.kind == real[key].dtype.kind, key


def test_mpii_valid_h5_defines_the_split_in_its_order(tmp_path):
    _release(tmp_path / "release.mat")
    with h5py.File(tmp_path / "pairs.h5", "w") as f:
        f["index"] = np.array([6.0, 1.0, 40.0])
        f["person"] = np.array([0.0, 0.0, 0.0])
    summary = prepare.prepare_mpii(tmp_path / "release.mat", tmp_path / "out",
                                   valid_h5=tmp_path / "pairs.h5")
    va, _ = _read(tmp_path / "out/annot/valid.h5")
    assert [int(i) for i in va["index"]] == [6, 1]  # the file's order, not the release's
    tr, _ = _read(tmp_path / "out/annot/train.h5")
    assert [int(i) for i in tr["index"]] == [0, 0, 2]
    assert summary["skipped"]["valid"] == {"pair not in the release": 1}
    assert summary["skipped"]["train"]["shares an image with a validation person"] == 2
    assert summary["images"] == {} and not (tmp_path / "out/images").exists()


def test_mpii_errors_name_the_file_and_the_problem(tmp_path):
    with pytest.raises(HgxError, match="not found"):
        prepare.prepare_mpii(tmp_path / "nope.mat", tmp_path / "out")
    sio.savemat(tmp_path / "other.mat", {"joints": np.zeros((3, 14, 2))})
    with pytest.raises(HgxError, match=r"no struct RELEASE \(it has: joints\)"):
        prepare.prepare_mpii(tmp_path / "other.mat", tmp_path / "out")
    sio.savemat(tmp_path / "half.mat", {"RELEASE": {"annolist": E, "act": E}})
    with pytest.raises(HgxError, match="RELEASE lacks annolist, img_train"):
        prepare.prepare_mpii(tmp_path / "half.mat", tmp_path / "out")
    (tmp_path / "junk.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(HgxError, match="cannot be read"):
        prepare.prepare_mpii(tmp_path / "junk.mat", tmp_path / "out")
    _release(tmp_path / "release.mat")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["index"] = np.zeros(2)
    with pytest.raises(HgxError, match="lacks person"):
        prepare.prepare_mpii(tmp_path / "release.mat", tmp_path / "out",
                             valid_h5=tmp_path / "bad.h5")


def test_packaged_valid_pairs_equal_valid_h5():
    real = _real_valid()
    pairs = prepare.load_valid_pairs()
    assert pairs.shape == (2958, 2)
    np.testing.assert_array_equal(pairs[:, 0], real["index"])
    np.testing.assert_array_equal(pairs[:, 1], real["person"])
    np.testing.assert_array_equal(prepare.load_valid_pairs(REAL_VALID), pairs)
    assert len({tuple(p) for p in pairs}) == 2958 and len(set(pairs[:, 0])) == 2729


def test_conventions_reproduce_valid_h5():
    """torsoangle, normalize = scale*20 and the LSP box factor, measured on the real file."""
    real = _real_valid()
    part, present = real["part"], real["part"][..., 0] > 0
    angles = [torso_angle(p[6] if ok[6] else None, p[7] if ok[7] else None)
              for p, ok in zip(part, present)]
    np.testing.assert_allclose(angles, real["torsoangle"], atol=1e-9)
    np.testing.assert_allclose(real["normalize"], 20 * real["scale"], rtol=1e-5)
    # LSP's framing re-derived from the stored boxes, which ARE the crops (hgx.data.formats):
    # crop side / joint-box side and the crop centre's drop below the joint-box centre
    full = present.all(axis=1)
    lo, hi = part[full].min(axis=1), part[full].max(axis=1)
    side = 200 * real["scale"][full]
    assert full.sum() == 2016
    assert np.median(side / (hi - lo).max(axis=1)) == pytest.approx(prepare.LSP_SCALE_FACTOR,
                                                                  abs=0.005)
    drop = (real["center"][full, 1] - (lo[:, 1] + hi[:, 1]) / 2) / side
    assert np.median(drop) == pytest.approx(prepare.LSP_CENTER_DROP, abs=0.002)


# --------------------------------------------------------------------------------------------
# LSP, LSP-extended and PyraNet's mpii-lsp mixture
# --------------------------------------------------------------------------------------------

def _lsp_people(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    part = rng.uniform(20, 180, size=(n, 14, 2))
    flag = (rng.random((n, 14)) < 0.2).astype(float)
    return part, flag


def _write_lsp(path: Path, part, occluded) -> None:
    """LSP's layout: 3 x 14 x N, row 3 = 1 for occluded."""
    j = np.concatenate([part, occluded[..., None]], axis=-1)  # N,14,3
    sio.savemat(path, {"joints": j.transpose(2, 1, 0)})


def _write_lspet(path: Path, part, visible) -> None:
    """LSP-extended's layout: 14 x 3 x N, column 3 = 1 for visible."""
    j = np.concatenate([part, visible[..., None]], axis=-1)
    sio.savemat(path, {"joints": j.transpose(1, 2, 0)})


@pytest.fixture(scope="module")
def lsp(tmp_path_factory):
    root = tmp_path_factory.mktemp("lsp")
    part, occluded = _lsp_people(2000, 0)
    part[5] = 0  # a person without joints: skipped
    _write_lsp(root / "joints.mat", part, occluded)
    (root / "images").mkdir()
    summary = prepare.prepare_lsp(root / "joints.mat", root / "out", root / "images")
    return root, summary, part, occluded


def test_lsp_split_names_visibility_and_box(lsp):
    root, summary, part, occluded = lsp
    assert summary["splits"] == {"train": 999, "valid": 1000}
    assert summary["skipped"] == {"train": {"fewer than 2 joints": 1}, "valid": {}}
    tr, attrs = _read(root / "out/annot/train.h5")
    va, _ = _read(root / "out/annot/valid.h5")
    assert tr["imgname"][0] == b"im0001.jpg" and tr["imgname"][5] == b"im0007.jpg"
    assert va["imgname"][0] == b"im1001.jpg" and va["imgname"][-1] == b"im2000.jpg"
    assert va["index"][0] == 1000 and not va["person"].any()
    i = 1000 + 17
    row = 17
    np.testing.assert_array_equal(va["part"][row], part[i])
    np.testing.assert_array_equal(va["visible"][row], 1 - occluded[i])  # LSP: 1 = occluded
    lo, hi = part[i].min(axis=0), part[i].max(axis=0)
    side = prepare.LSP_SCALE_FACTOR * max(hi - lo)  # the crop box, stored as it is cropped
    np.testing.assert_allclose(va["center"][row],
                               (lo + hi) / 2 + [0, prepare.LSP_CENTER_DROP * side])
    assert va["scale"][row] == pytest.approx(side / 200)
    # torso: l-shoulder to r-hip (eval_pose utils/eval_pck.m:36)
    assert va["normalize"][row] == pytest.approx(np.linalg.norm(part[i, 9] - part[i, 2]))
    assert attrs["name"] == "lsp" and attrs["pck_norm"] == "torso"
    assert [n.decode() for n in attrs["joint_names"]] == list(LSP.joints)
    assert [tuple(p) for p in attrs["flip_pairs"]] == list(LSP.flip_pairs)
    read_annotations(root / "out/annot/valid.h5", joints=14)
    assert (root / "out/images").resolve() == (root / "images").resolve()


def test_lsp_extended_alone_and_added(tmp_path):
    part, visible = _lsp_people(30, 1)
    visible = 1 - visible
    part[3, 0] = (500.0, 600.0)  # an occluded, far-off joint: not part of the box
    visible[3, 0] = 0
    _write_lspet(tmp_path / "lspet.mat", part, visible)
    (tmp_path / "lspet_images").mkdir()
    with pytest.raises(HgxError, match="extended=True"):
        prepare.prepare_lsp(tmp_path / "lspet.mat", tmp_path / "x", tmp_path / "lspet_images")
    s = prepare.prepare_lsp(tmp_path / "lspet.mat", tmp_path / "ext", tmp_path / "lspet_images",
                            extended=True)
    assert s["splits"] == {"train": 30, "valid": 0}
    assert any("no validation" in n for n in s["notes"])
    tr, _ = _read(tmp_path / "ext/annot/train.h5")
    assert tr["imgname"][0] == b"im00001.jpg"
    np.testing.assert_array_equal(tr["visible"], visible)  # LSP-extended: 1 = visible
    seen = part[3, visible[3] > 0]
    side = 200 * tr["scale"][3]
    assert side == pytest.approx(prepare.LSP_SCALE_FACTOR * (seen.max(0) - seen.min(0)).max())
    np.testing.assert_allclose(tr["center"][3], (seen.min(0) + seen.max(0)) / 2
                               + [0, prepare.LSP_CENTER_DROP * side])
    read_annotations(tmp_path / "ext/annot/valid.h5", joints=14)  # an empty split reads

    lsp_part, occ = _lsp_people(2000, 2)
    _write_lsp(tmp_path / "lsp.mat", lsp_part, occ)
    (tmp_path / "lsp_images").mkdir()
    with pytest.raises(HgxError, match="not LSP-extended"):
        prepare.prepare_lsp(tmp_path / "lsp.mat", tmp_path / "both", tmp_path / "lsp_images",
                            extended_mat=tmp_path / "lsp.mat")
    s = prepare.prepare_lsp(tmp_path / "lsp.mat", tmp_path / "both", tmp_path / "lsp_images",
                            extended_mat=tmp_path / "lspet.mat",
                            extended_images=tmp_path / "lspet_images")
    assert s["splits"] == {"train": 1030, "valid": 1000}
    tr, _ = _read(tmp_path / "both/annot/train.h5")
    assert tr["imgname"][0] == b"lsp/im0001.jpg" and tr["imgname"][-1] == b"lspet/im00030.jpg"
    images = tmp_path / "both/images"
    assert images.is_dir() and not images.is_symlink()
    assert (images / "lspet").resolve() == (tmp_path / "lspet_images").resolve()
    assert (images / "lsp").resolve() == (tmp_path / "lsp_images").resolve()


def test_lsp_bad_files(tmp_path):
    sio.savemat(tmp_path / "j.mat", {"joints": np.zeros((2, 14, 5))})
    with pytest.raises(HgxError, match=r"shape \(2, 14, 5\)"):
        prepare.prepare_lsp(tmp_path / "j.mat", tmp_path / "o", None)
    sio.savemat(tmp_path / "k.mat", {"pose": np.zeros((3, 14, 5))})
    with pytest.raises(HgxError, match="no array 'joints'"):
        prepare.prepare_lsp(tmp_path / "k.mat", tmp_path / "o", None)
    _write_lsp(tmp_path / "ok.mat", *_lsp_people(3, 0))
    with pytest.raises(HgxError, match="image folder .* not found"):
        prepare.prepare_lsp(tmp_path / "ok.mat", tmp_path / "o", tmp_path / "missing")


def test_mix_mpii_lsp(mpii, lsp, tmp_path):
    mroot, msum = mpii
    lroot, lsum, part, occluded = lsp
    s = prepare.mix_mpii_lsp(mroot / "out", lroot / "out", tmp_path / "mix")
    assert s["splits"] == {"train": lsum["splits"]["train"] + msum["splits"]["train"],
                           "valid": lsum["splits"]["valid"]}
    tr, attrs = _read(tmp_path / "mix/annot/train.h5")
    va, _ = _read(tmp_path / "mix/annot/valid.h5")
    assert attrs["name"] == "mpii-lsp" and attrs["pck_norm"] == "torso"
    assert list(attrs["torso"]) == [13, 2]
    assert tr["imgname"][0] == b"lsp/im0001.jpg" and tr["imgname"][-1] == b"mpii/000000002.jpg"
    # PyraNet's framing of the mixture (datasets/mpii-lsp.lua:68-69): 410/256 x the raw scale at
    # the raw objpos, i.e. the stored box un-adjusted (formats.raw_box), then x 410/256
    mp, _ = _read(mroot / "out/annot/train.h5")
    k = len(tr["scale"]) - len(mp["scale"])  # MPII rows follow LSP's
    np.testing.assert_allclose(tr["scale"][k:], 410 / 256 * mp["scale"] / 1.25)
    np.testing.assert_allclose(tr["center"][k:, 1], mp["center"][:, 1] - 12 * mp["scale"])
    lv, _ = _read(lroot / "out/annot/valid.h5")
    np.testing.assert_allclose(va["scale"], 410 / 256 * lv["scale"] / 1.25)
    i, row = 1000 + 4, 4
    p, v = va["part"][row], va["visible"][row]
    assert va["imgname"][row] == b"lsp/im1005.jpg"
    np.testing.assert_array_equal(p[[12, 13, 8, 9, 10, 15]], part[i][[8, 9, 12, 13, 6, 11]])
    np.testing.assert_allclose(p[6], (part[i, 2] + part[i, 3]) / 2)  # pelvis: hips' midpoint
    np.testing.assert_allclose(p[7], (part[i, 8] + part[i, 9]) / 2)  # thorax: shoulders'
    vis = 1 - occluded[i]
    assert v[6] == vis[2] * vis[3] and v[7] == vis[8] * vis[9]
    read_annotations(tmp_path / "mix/annot/train.h5", joints=16)
    assert (tmp_path / "mix/images/lsp").resolve() == (lroot / "images").resolve()
    assert (tmp_path / "mix/images/mpii").resolve() == (mroot / "images").resolve()
    skel = prepare.describe_custom(tmp_path / "mix/annot/valid.h5")
    assert skel.joints == MPII.joints and skel.torso == (13, 2) and skel.pck_norm == "torso"


# --------------------------------------------------------------------------------------------
# COCO
# --------------------------------------------------------------------------------------------

def _kps(points: dict[int, tuple[float, float, int]]) -> list[float]:
    out = [0.0] * 51
    for j, (x, y, v) in points.items():
        out[3 * j:3 * j + 3] = [x, y, v]
    return out


def _coco(path: Path, image_ids=(1, 2)) -> None:
    full = {j: (100.0 + j, 50.0 + 3 * j, 2) for j in range(17)}
    full[0] = (120.5, 40.25, 1)  # occluded
    full[16] = (0.0, 0.0, 0)     # not labelled
    data = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in image_ids],
        "annotations": [
            {"id": 10, "image_id": image_ids[0], "iscrowd": 1, "num_keypoints": 0,
             "keypoints": _kps({}), "bbox": [0, 0, 50, 50]},
            {"id": 11, "image_id": image_ids[0], "iscrowd": 0, "num_keypoints": 16,
             "keypoints": _kps(full), "bbox": [90.0, 30.0, 40.0, 120.0]},
            {"id": 12, "image_id": image_ids[0], "iscrowd": 0, "num_keypoints": 0,
             "keypoints": _kps({}), "bbox": [1, 1, 5, 5]},
            {"id": 13, "image_id": image_ids[1], "iscrowd": 0, "num_keypoints": 2,
             "keypoints": _kps({5: (10, 10, 2), 9: (20, 30, 2)}), "bbox": [5, 5, 80, 30]},
            {"id": 14, "image_id": 999, "iscrowd": 0, "num_keypoints": 1,
             "keypoints": _kps({5: (10, 10, 2)}), "bbox": [5, 5, 8, 3]},
        ],
        "categories": [{"id": 1, "name": "person"}],
    }
    path.write_text(json.dumps(data))


def test_coco(tmp_path):
    _coco(tmp_path / "train.json")
    _coco(tmp_path / "val.json", image_ids=(7, 8))
    for d in ("train2017", "val2017"):
        (tmp_path / d).mkdir()
    s = prepare.prepare_coco(tmp_path / "train.json", tmp_path / "out", tmp_path / "train2017",
                             valid_json=tmp_path / "val.json",
                             valid_images=tmp_path / "val2017")
    assert s["splits"] == {"train": 2, "valid": 2}
    assert s["skipped"]["train"] == {"crowd": 1, "fewer than 1 keypoints": 1,
                                     "image not listed": 1}
    tr, attrs = _read(tmp_path / "out/annot/train.h5")
    assert list(tr["imgname"]) == [b"train/000000000001.jpg", b"train/000000000002.jpg"]
    assert list(tr["index"]) == [1.0, 2.0] and list(tr["person"]) == [1.0, 0.0]
    np.testing.assert_array_equal(tr["center"][0], [110.0, 90.0])
    # HRNet's crop: max(w, h) x 1.25 (lib/dataset/coco.py:214-229)
    assert tr["scale"][0] == 1.25 * 120.0 / 200 and tr["scale"][1] == 1.25 * 80.0 / 200
    np.testing.assert_array_equal(tr["part"][0, 0], [120.5, 40.25])  # occluded: kept
    assert tr["visible"][0, 0] == 0 and tr["visible"][0, 1] == 1
    assert not tr["part"][0, 16].any() and tr["visible"][0, 16] == 0  # not labelled
    r_sho, l_hip = tr["part"][0, 6], tr["part"][0, 11]
    assert tr["normalize"][0] == pytest.approx(np.linalg.norm(r_sho - l_hip))
    assert math.isnan(tr["normalize"][1])  # torso unknown
    assert attrs["name"] == "coco"
    assert [n.decode() for n in attrs["joint_names"]] == list(COCO.joints)
    read_annotations(tmp_path / "out/annot/train.h5", joints=17)
    va, _ = _read(tmp_path / "out/annot/valid.h5")
    assert va["imgname"][0] == b"valid/000000000007.jpg"
    assert (tmp_path / "out/images/valid").resolve() == (tmp_path / "val2017").resolve()

    s = prepare.prepare_coco(tmp_path / "train.json", tmp_path / "one", tmp_path / "train2017",
                             min_keypoints=3)
    assert s["splits"] == {"train": 1, "valid": 0}
    assert s["skipped"]["train"]["fewer than 3 keypoints"] == 2
    tr, _ = _read(tmp_path / "one/annot/train.h5")
    assert tr["imgname"][0] == b"000000000001.jpg"


def test_coco_errors(tmp_path):
    with pytest.raises(HgxError, match="not found"):
        prepare.prepare_coco(tmp_path / "x.json", tmp_path / "o", None)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(HgxError, match="cannot be read as JSON"):
        prepare.prepare_coco(tmp_path / "bad.json", tmp_path / "o", None)
    (tmp_path / "empty.json").write_text('{"images": []}')
    with pytest.raises(HgxError, match="lacks annotations"):
        prepare.prepare_coco(tmp_path / "empty.json", tmp_path / "o", None)


# --------------------------------------------------------------------------------------------
# Custom datasets
# --------------------------------------------------------------------------------------------

def _custom(path: Path, attrs: dict, normalize=True) -> None:
    n, j = 3, 4
    with h5py.File(path, "w") as f:
        f["center"] = np.ones((n, 2))
        f["scale"] = np.ones(n)
        f["part"] = np.ones((n, j, 2))
        f["imgname"] = np.array([b"a.jpg"] * n)
        if normalize:
            f["normalize"] = np.full(n, 10.0)
        for k, v in attrs.items():
            f.attrs[k] = v


def test_describe_custom_round_trips_converted_files(lsp):
    root = lsp[0]
    skel = prepare.describe_custom(root / "out/annot/train.h5")
    assert (skel.name, skel.joints, skel.flip_pairs, skel.limbs, skel.pck_norm, skel.torso,
            skel.acc_joints) == ("lsp", LSP.joints, LSP.flip_pairs, LSP.limbs, "torso",
                                 LSP.torso, LSP.acc_joints)


def test_describe_custom_defaults_and_errors(tmp_path):
    names = ["head", "l_hand", "r_hand", "tail"]
    _custom(tmp_path / "a.h5", {"joint_names": names, "flip_pairs": [[1, 2]]})
    skel = prepare.describe_custom(tmp_path / "a.h5")
    assert skel.name == "a" and skel.joints == tuple(names) and skel.flip_pairs == ((1, 2),)
    assert skel.limbs == () and skel.pck_norm == "head" and skel.acc_joints == (0, 1, 2, 3)
    assert skel.flip_index() == [0, 2, 1, 3]

    _custom(tmp_path / "b.h5", {"joint_names": ["Right Shoulder", "left_shoulder", "left hip",
                                                "right_hip"], "flip_pairs": [[0, 1], [2, 3]],
                                "name": "birds"}, normalize=False)
    skel = prepare.describe_custom(tmp_path / "b.h5")
    assert skel.name == "birds" and skel.pck_norm == "torso" and skel.torso == (0, 2)

    _custom(tmp_path / "c.h5", {})
    with pytest.raises(HgxError, match="lacks the attribute.*joint_names, flip_pairs"):
        prepare.describe_custom(tmp_path / "c.h5")
    _custom(tmp_path / "d.h5", {"joint_names": names, "flip_pairs": [[1, 7]]})
    with pytest.raises(HgxError, match="flip_pairs .* outside 0..3"):
        prepare.describe_custom(tmp_path / "d.h5")
    _custom(tmp_path / "e.h5", {"joint_names": names, "flip_pairs": np.zeros((0, 2), int)},
            normalize=False)
    with pytest.raises(HgxError, match="add the attribute torso"):
        prepare.describe_custom(tmp_path / "e.h5")
    _custom(tmp_path / "f.h5", {"joint_names": names[:3], "flip_pairs": [[1, 2]]})
    with pytest.raises(HgxError, match="part has 4 joints, the dataset has 3"):
        prepare.describe_custom(tmp_path / "f.h5")
    _custom(tmp_path / "g.h5", {"joint_names": names, "flip_pairs": [[1, 2], [2, 3]]})
    with pytest.raises(HgxError, match="uses a joint twice"):
        prepare.describe_custom(tmp_path / "g.h5")
    with pytest.raises(HgxError, match="not found"):
        prepare.describe_custom(tmp_path / "none.h5")
