"""Datasets beyond the built-in ones train end to end: a custom h5 with its own joints."""
from __future__ import annotations


import h5py
import numpy as np
import pytest

from conftest import TINY, dataset_of, require_shared


def _custom_from_synthetic(hgx, tmp_path, joints):
    """A custom dataset: the synthetic images, a subset of joints, self-describing attributes."""
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0
    from hgx.data.joints import MPII
    from hgx.data.synth import synth_cache_dir

    src = synth_cache_dir(0, (160, 120), 24, 8, 4)
    dst = tmp_path / "custom"
    (dst / "annot").mkdir(parents=True)
    (dst / "images").symlink_to(src / "images")
    names = [MPII.joints[j] for j in joints]
    pairs = [[names.index(a), names.index(b)] for a, b in
             (("r_wrist", "l_wrist"), ("r_ankle", "l_ankle")) if a in names and b in names]
    for split in ("train", "valid", "test"):
        with h5py.File(src / "annot" / f"{split}.h5") as f, \
                h5py.File(dst / "annot" / f"{split}.h5", "w") as g:
            for key in f:
                data = f[key][()]
                g[key] = data[:, joints] if key in ("part", "visible") else data
            g.attrs["joint_names"] = names
            g.attrs["flip_pairs"] = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    return dst


def test_custom_dataset_with_its_own_joint_count(hgx, tmp_path):
    joints = [0, 5, 8, 9, 10, 15]  # ankles, neck, head-top, wrists
    data = _custom_from_synthetic(hgx, tmp_path, joints)
    code, out = hgx("new", "c", *TINY, "--epochs", "1", "--dataset", "custom", "--data-dir",
                    str(data))
    assert code == 0, out
    code, out = hgx("eval", "c", "--json")
    assert code == 0, out
    code, out = hgx("finalize", "c")
    assert code == 0, out
    with h5py.File(hgx.root / "c" / "final_preds.h5") as f:
        assert f["preds"].shape[1:] == (len(joints), 2)


def test_custom_dataset_without_attributes_is_refused(hgx, tmp_path):
    data = _custom_from_synthetic(hgx, tmp_path, list(range(16)))
    with h5py.File(data / "annot" / "train.h5", "a") as f:
        del f.attrs["flip_pairs"]
    code, out = hgx("new", "c", *TINY, "--dataset", "custom", "--data-dir", str(data))
    assert code == 1 and "flip_pairs" in out
    assert not (hgx.root / "c").exists()


def test_prepare_commands_report_missing_files(hgx):
    code, out = hgx("data", "prepare", "lsp", "--joints", "nope.mat", "--images", ".")
    assert code == 1 and "nope.mat" in out


@pytest.mark.parametrize("split,count", [("train", 3987), ("valid", 1016)])
def test_reads_pose_hg_train_flic_annotations(split, count):
    from conftest import SHARED
    from hgx.data.dataset import read_annotations
    from hgx.data.joints import FLIC

    path = SHARED / "data/flic/annot" / f"{split}.h5"
    require_shared(path)
    annot = read_annotations(path, FLIC.num_joints)
    assert len(annot) == count and annot.part.shape == (count, 11, 2)
    assert annot.present.mean() > 0.9


def test_reads_the_real_mpii_valid_h5():
    from conftest import SHARED
    from hgx.data.dataset import read_annotations

    path = SHARED / "data/mpii/annot/valid.h5"
    require_shared(path)
    annot = read_annotations(path, 16)
    assert len(annot) == 2958 and annot.imgname[0] == "005808361.jpg"
    assert np.isfinite(annot.normalize).all()


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_other_optimizers_train(hgx, optimizer):
    code, out = hgx("new", optimizer, *TINY, "--epochs", "1", "--optimizer", optimizer,
                    "--lr", "1e-3", "--momentum", "0.9")
    assert code == 0, out
    import torch

    snap = torch.load(hgx.root / optimizer / "snapshots" / "best.pt", weights_only=False)
    state = next(iter(snap["optimizer"]["state"].values()))
    assert ("exp_avg" in state) if optimizer == "adam" else ("momentum_buffer" in state)


def test_jpeg_decode_gives_the_pixels_of_cv2_imread_full_and_reduced(tmp_path):
    """hgx decodes JPEGs with simplejpeg for speed; the pixels are exactly cv2.imread's, at
    full and at 1/2, 1/4, 1/8 resolution, and a PNG still goes through cv2."""
    import cv2

    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 256, (123, 301, 3), dtype=np.uint8), (0, 0), 3)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(tmp_path / "images" / "b.png"), img)
    ds = dataset_of(tmp_path, ["a.jpg", "b.png"], (150.0, 60.0), 0.5)
    flags = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
             8: cv2.IMREAD_REDUCED_COLOR_8}
    for row, name in enumerate(("a.jpg", "b.png")):
        for reduce, flag in flags.items():
            want = cv2.imread(str(tmp_path / "images" / name), flag)
            got = ds.load_image(row, reduce)
            assert got.shape == want.shape and np.array_equal(got, want), (name, reduce)
