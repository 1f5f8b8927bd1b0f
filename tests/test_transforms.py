"""pose-hg-train's data recipe, number for number, and the coordinate round trips."""
from __future__ import annotations

import dataclasses
import math

import cv2
import h5py
import numpy as np
import pytest

from hgx import options as hopts
from hgx.data import transforms as T
from hgx.data.dataset import PoseDataset, read_annotations
from hgx.data.joints import MPII


def test_heatmap_kernel_is_7x7_sigma_1_75_peak_1():
    win = T.gaussian_window(1.75)
    assert win.shape == (7, 7) and win.max() == 1.0 and win[3, 3] == 1.0
    assert win[3, 4] == pytest.approx(math.exp(-1 / (2 * 1.75 ** 2)), rel=1e-6)
    assert win[0, 0] == pytest.approx(math.exp(-18 / (2 * 1.75 ** 2)), rel=1e-5)


def test_heatmap_on_truncated_joint_and_missing_joints_empty():
    joints = np.array([[10.7, 5.2], [0.0, 0.0], [100.0, 3.0], [-5.0, 3.0]])
    present = np.array([True, False, True, True])
    hm = T.draw_heatmaps(joints, present, 64)
    assert np.unravel_index(hm[0].argmax(), hm[0].shape) == (5, 10)
    assert hm[0].max() == 1.0 and np.count_nonzero(hm[0]) == 49  # drawn only in its window
    assert not hm[1].any() and not hm[2].any() and not hm[3].any()


def test_decode_has_no_bias():
    rng = np.random.default_rng(0)
    pts = rng.uniform(2, 62, size=(4000, 1, 2))
    hms = np.stack([T.draw_heatmaps(p, [True], 64) for p in pts])
    coords, scores = T.decode(hms)
    err = coords - pts
    assert np.abs(err.mean(axis=(0, 1))).max() < 0.02  # heatmap px
    assert np.abs(err).max() <= 0.5 + 1e-9 and (scores == 1).all()


def test_decode_quarter_shift_toward_higher_neighbour():
    hm = np.zeros((1, 1, 8, 8), np.float32)
    hm[0, 0, 4, 4], hm[0, 0, 4, 5], hm[0, 0, 3, 4] = 1.0, 0.5, 0.2
    coords, _ = T.decode(hm)
    assert coords[0, 0].tolist() == [4.75, 4.25]


def test_round_trip_image_to_heatmap_to_image_bias_under_0_2_px():
    """Ground-truth joints -> training heatmaps -> coordinates, in original image pixels."""
    rng = np.random.default_rng(1)
    errs = []
    for _ in range(3000):
        center = rng.uniform(300, 900, 2)
        scale = rng.uniform(1.0, 5.0) * 1.25
        m = T.crop_matrix(center, scale, 0.0, 64)
        joint = center + rng.uniform(-60, 60, 2) * scale
        hm = T.draw_heatmaps(T.apply(m, joint[None]), [True], 64)
        xy, _ = T.decode(hm)
        errs.append(T.apply(T.invert(m), xy)[0] - joint)
    errs = np.array(errs)
    assert np.abs(errs.mean(axis=0)).max() < 0.2


def test_crop_and_inverse_within_half_a_pixel():
    rng = np.random.default_rng(2)
    for _ in range(100):
        m = T.crop_matrix(rng.uniform(0, 1000, 2), rng.uniform(0.5, 8), rng.uniform(-60, 60), 256)
        pts = rng.uniform(0, 1280, (16, 2))
        assert np.abs(T.apply(T.invert(m), T.apply(m, pts)) - pts).max() < 0.5


def _dataset(tmp_path, augment=True, **over):
    """One person on a black image with a bright dot at each joint position."""
    img = np.zeros((480, 640, 3), np.uint8)
    joints = np.array([[200 + 15 * j, 150 + 12 * j] for j in range(16)], np.float64)
    for x, y in joints[[0, 9, 10]]:  # three markers: r-ankle, head-top, r-wrist
        cv2.circle(img, (int(x), int(y)), 3, (255, 255, 255), -1)
    (tmp_path / "images").mkdir(exist_ok=True)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), img)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["center"] = np.array([[310.0, 230.0]])
        f["scale"] = np.array([1.5])
        f["part"] = joints[None]
        f["visible"] = np.ones((1, 16))
        f["normalize"] = np.array([30.0])
        f["imgname"] = np.array([b"a.png"])
    opts = hopts.resolve(None, None, {"input_res": 128, "output_res": 32, **over})
    return PoseDataset(read_annotations(tmp_path / "a.h5", 16), tmp_path / "images", MPII, opts,
                       augment=augment, seed=0)


def test_box_is_the_stored_crop_box(tmp_path):
    """annot files hold the crop box (hgx.data.formats); readers never adjust it again."""
    ds = _dataset(tmp_path)
    c, s = ds.box(0)
    assert c.tolist() == [310.0, 230.0] and s == 1.5


def test_augmentation_numbers(tmp_path):
    ds = _dataset(tmp_path)
    rng = np.random.default_rng(0)
    augs = [ds.augmentation(rng) for _ in range(20000)]
    s = np.array([a[0] for a in augs])
    r = np.array([a[1] for a in augs])
    flips = np.array([a[2] for a in augs])
    colour = np.stack([a[3] for a in augs])
    assert s.min() >= 2 ** -0.5 - 1e-12 and s.max() <= 2 ** 0.5 + 1e-12
    assert np.log2(s).std() == pytest.approx(0.25 * 0.959, abs=0.01)  # N(0, 0.25) clipped at 2 sd
    assert np.abs(r).max() <= 60 and (r != 0).mean() == pytest.approx(0.4, abs=0.015)
    assert r[r != 0].std() == pytest.approx(30 * 0.959, abs=1.0)  # N(0, 30) clipped at 2 sd
    assert flips.mean() == pytest.approx(0.5, abs=0.015)
    assert colour.min() >= 0.6 and colour.max() <= 1.4


def test_image_and_heatmaps_agree_under_augmentation(tmp_path):
    """The dot drawn at a joint appears where that joint's heatmap peaks, flipped or not."""
    ds = _dataset(tmp_path, color_aug=0.0)
    seen_flip = set()
    for pos in range(40):
        image, hm, meta = ds.example((0, 1, pos))
        seen_flip.add(bool(meta["flip"]))
        # r-ankle (0) becomes l-ankle (5) when flipped: the label follows the person's side.
        j = 5 if meta["flip"] else 0
        if hm[j].max() < 1:
            continue
        peak = (np.array(np.unravel_index(hm[j].argmax(), hm[j].shape)[::-1]) + 0.5) * 4
        gray = image.mean(axis=0)
        near = gray[max(0, int(peak[1]) - 12):int(peak[1]) + 12,
                    max(0, int(peak[0]) - 12):int(peak[0]) + 12]
        assert near.max() > 0.5, f"no marker near the joint's heatmap peak at sample {pos}"
        # and back to image coordinates through the sample's own inverse map
        xy, _ = T.decode(hm[None, j:j + 1])
        back = T.apply(meta["hm_to_image"], xy)[0, 0]
        assert np.abs(back - [200, 150]).max() < 200 * ds.annot.scale[0] * 1.5 / 32
    assert seen_flip == {True, False}


def test_colour_augmentation_clamps_to_unit_range(tmp_path):
    ds = _dataset(tmp_path, color_aug=0.4)
    image, _, _ = ds.example((0, 1, 3))
    assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
    assert image.shape == (3, 128, 128)


def _reference_heatmap(x, y, ok, res, sigma=1.75):
    """pose-hg-train's drawGaussian, one pixel at a time."""
    win = T.gaussian_window(sigma)
    half = win.shape[0] // 2
    hm = np.zeros((res, res), np.float32)
    if not ok or not (np.isfinite(x) and np.isfinite(y)):
        return hm
    px, py = math.floor(x), math.floor(y)
    for yy in range(res):
        for xx in range(res):
            if abs(xx - px) <= half and abs(yy - py) <= half:
                hm[yy, xx] = win[yy - py + half, xx - px + half]
    return hm


def test_heatmaps_drawn_in_torch_equal_the_pixel_by_pixel_recipe():
    rng = np.random.default_rng(3)
    res = 16
    joints = rng.uniform(-6, res + 6, size=(40, 2))
    joints[:4] = [[0.0, 0.0], [15.99, 15.99], [np.nan, 3.0], [1e30, -1e30]]
    present = rng.random(40) < 0.8
    present[:4] = True
    hm = T.draw_heatmaps(joints, present, res)
    for j, ((x, y), ok) in enumerate(zip(joints, present)):
        np.testing.assert_array_equal(hm[j], _reference_heatmap(x, y, ok, res), err_msg=str(j))


def test_a_sample_leaves_the_worker_compact_and_becomes_the_network_input(tmp_path):
    """uint8 RGB crop + joints (about a fifth of the bytes of float image + heatmaps); the
    consumer's image is the crop / 255 times the colour factors, its heatmaps those of the
    joints."""
    ds = _dataset(tmp_path, color_aug=0.2)
    s = ds[(0, 1, 5)]
    assert s.crop.dtype == np.uint8 and s.crop.shape == (128, 128, 3)
    assert s.joints.shape == (16, 2) and s.present.dtype == bool
    image, hm, meta = ds.example((0, 1, 5))
    expect = np.clip(s.crop.transpose(2, 0, 1).astype(np.float32) / 255 *
                     s.colour[:, None, None], 0, 1)
    np.testing.assert_allclose(image, expect, atol=1e-6)
    np.testing.assert_array_equal(hm, T.draw_heatmaps(s.joints, s.present, 32))
    # a batch made on the device is channels_last in memory for free (the crops are HWC)
    import torch

    from hgx.data.batch import collate, to_device

    images, maps = to_device(collate([s, s]), torch.device("cpu"), True, 32, 1.75)
    assert images.is_contiguous(memory_format=torch.channels_last)
    assert images.shape == (2, 3, 128, 128) and maps.shape == (2, 16, 32, 32)
    assert meta["flip"] == s.meta["flip"]
    np.testing.assert_array_equal(meta["hm_to_image"], s.meta["hm_to_image"])


def test_mirroring_inside_the_warp_equals_mirroring_the_crop(tmp_path):
    """The flip is folded into the crop's affine map; the pixels are those of flipping the
    unflipped crop, up to the warp's fixed-point interpolation."""
    ds = _dataset(tmp_path, color_aug=0.0)
    texture = cv2.GaussianBlur(np.random.default_rng(0).integers(0, 256, (480, 640, 3),
                                                                 dtype=np.uint8), (0, 0), 2)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), texture)
    flipped = [p for p in range(40) if ds[(0, 1, p)].meta["flip"]]
    assert flipped
    unflipped = PoseDataset(ds.annot, ds.image_dir, MPII,
                            dataclasses.replace(ds.opts, flip_prob=0.0), augment=True, seed=0)
    for pos in flipped[:5]:
        s = ds[(0, 1, pos)]
        plain = unflipped[(0, 1, pos)]  # the same draw of scale/rotation, not mirrored
        diff = np.abs(s.crop.astype(int) - plain.crop[:, ::-1].astype(int))
        assert diff.mean() < 0.5 and diff.max() <= 4, (diff.mean(), diff.max())
