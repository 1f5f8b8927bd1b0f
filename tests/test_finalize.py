"""eval and finalize end to end on the synthetic set, plus the multi-scale/flip geometry."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from conftest import SHARED, TINY, require_shared
from hgx.data import transforms as T
from hgx.engine.predict import flip_back


def _fuse_by_hand(per_scale, maps, image_size):
    """evalPyra's fusion written out pixel by pixel in numpy (bearpaw/PyraNet train.lua:
    227-328): each scale's maps resized with align-corners bilinear sampling to its footprint
    in the image, pasted, averaged over scales; the integer argmax."""
    res = per_scale[0].shape[-1]
    w_img, h_img = (int(v) for v in image_size)
    total = np.zeros((per_scale[0].shape[0], h_img, w_img))
    for hm, m in zip(per_scale, maps):
        ul = T.apply(m, np.array([[0.0, 0.0]]))[0]
        br = T.apply(m, np.array([[res, res]], float))[0]
        fx0, fy0 = int(np.floor(ul[0] + 0.5)), int(np.floor(ul[1] + 0.5))
        fw, fh = int(np.floor(br[0] + 0.5)) - fx0, int(np.floor(br[1] + 0.5)) - fy0
        for yy in range(fh):
            for xx in range(fw):
                x, y = fx0 + xx, fy0 + yy
                if not (0 <= x < w_img and 0 <= y < h_img):
                    continue
                sx, sy = xx * (res - 1) / (fw - 1), yy * (res - 1) / (fh - 1)
                x0, y0 = min(int(sx), res - 2), min(int(sy), res - 2)
                ax, ay = sx - x0, sy - y0
                v = (hm[:, y0, x0] * (1 - ax) * (1 - ay) + hm[:, y0, x0 + 1] * ax * (1 - ay)
                     + hm[:, y0 + 1, x0] * (1 - ax) * ay + hm[:, y0 + 1, x0 + 1] * ax * ay)
                total[:, y, x] += v
    total /= len(per_scale)
    flat = total.reshape(len(total), -1)
    idx = flat.argmax(1)
    return np.stack([idx % w_img + 0.5, idx // w_img + 0.5], 1), flat.max(1)


def test_multi_scale_fusion_is_pyranets():
    """hgx's --scales fuse as evalPyra does: checked against the pixel-by-pixel fusion on
    random heatmaps of three scales of one person near the image's border."""
    from hgx.engine.predict import fuse_in_image

    rng = np.random.default_rng(0)
    res, center, scale = 8, np.array([30.0, 21.0]), 0.2
    per_scale, maps = [], []
    for f in (0.8, 1.0, 1.3):
        m = T.invert(T.crop_matrix(center, scale * f, 0, res))
        maps.append(m)
        per_scale.append(torch.from_numpy(rng.random((3, res, res)).astype(np.float32)))
    size = np.array([50.0, 40.0])
    got, peaks = fuse_in_image(per_scale, maps, size)
    want, want_peaks = _fuse_by_hand([p.numpy() for p in per_scale], maps, size)
    np.testing.assert_allclose(got, want)
    np.testing.assert_allclose(peaks, want_peaks, rtol=1e-5)


def test_multi_scale_prediction_finds_a_joint_where_the_image_has_it(tmp_path):
    """A 'network' whose heatmaps are the crop's brightness: every scale's crop sees the bright
    dot at (245, 105) of the photograph, 55 px right of and above the box's centre, and the
    fused prediction lands on it within a heatmap pixel (5.6 image px): a scale, offset or
    flip mistake in the fusion would put it tens of pixels away."""
    import cv2

    from hgx import options as hopts
    from hgx.data.dataset import PoseDataset, read_annotations
    from hgx.data.joints import MPII
    from hgx.engine.device import setup_runtime
    from hgx.engine.predict import PYRANET_SCALES, predict

    img = np.zeros((300, 400, 3), np.uint8)
    cv2.circle(img, (245, 105), 4, (255, 255, 255), -1)
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), img)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["center"] = np.array([[190.0, 160.0]])
        f["scale"] = np.array([0.9])
        f["part"] = np.zeros((1, 16, 2))
        f["imgname"] = np.array([b"a.png"])
    opts = hopts.resolve(None, None, {"input_res": 128, "output_res": 32, "precision": "fp32"})
    ds = PoseDataset(read_annotations(tmp_path / "a.h5", 16), tmp_path / "images", MPII, opts,
                     augment=False)

    class Brightness(torch.nn.Module):
        def forward(self, x):
            hm = torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4)
            return hm.expand(-1, 16, -1, -1)[None]

    runtime = setup_runtime(opts)
    for scales in (PYRANET_SCALES, (1.0,)):
        pred = predict(Brightness(), ds, runtime, batch=1, flip=True, scales=scales)
        assert np.abs(pred.preds[0] - [245.5, 105.5]).max() <= 4.0, (scales, pred.preds[0])


def test_flip_back_swaps_sides_and_mirrors():
    hm = torch.zeros(1, 3, 8, 8)
    hm[0, 0, 2, 1] = 1  # joint 0 near the left edge of the mirrored image
    out = flip_back(hm, [2, 1, 0])
    assert out[0, 2, 2, 6] == 1 and out[0, 0].sum() == 0


def _learned_opts(exp):
    import yaml

    from hgx import options as hopts

    return hopts.Options(**yaml.safe_load((exp / "options.yaml").read_text()))


def test_finalize_writes_provenance_and_no_mat_without_release(hgx, learned):
    code, out = hgx("finalize", "learned")
    assert code == 0, out
    assert "flip on" in out and "best.pt" in out  # which snapshot and options, printed
    assert "--mpii-release" in out  # ... and how to make the submission
    from hgx.data import open_split

    test = open_split(_learned_opts(learned), "test")
    with h5py.File(learned / "final_preds.h5") as f:
        assert f["preds"].shape == (len(test), 16, 2)
        assert [n.decode() for n in f["imgname"][()]] == test.annot.imgname  # file order
        assert f.attrs["flip"] and list(f.attrs["scales"]) == [1.0]
        assert f.attrs["snapshot"].endswith("best.pt") and f.attrs["split"] == "test"
        np.testing.assert_array_equal(f["index"][()], test.annot.index)
    assert not list(learned.glob("*.mat"))
    code, out = hgx("finalize", "learned", "--no-flip", "--out", str(learned / "nf.h5"))
    assert code == 0 and "flip off" in out
    with h5py.File(learned / "nf.h5") as f, h5py.File(learned / "final_preds.h5") as g:
        assert not f.attrs["flip"]
        assert not np.allclose(f["preds"][()], g["preds"][()])  # flipping changed numbers


def _release(path, test_annot, n_images: int, extra_test_image: int) -> None:
    """An MPII release in the official structure for the synthetic set: one annolist entry
    per image, img_train 0 for the test images; test rects hold only scale and objpos (the raw
    values, as MPII's release has them), training rects a head box as well."""
    from hgx.data.formats import raw_box

    test_images = set(test_annot.index.astype(int).tolist()) | {extra_test_image}
    annolist = np.zeros((1, n_images), dtype=[("image", object), ("annorect", object),
                                              ("frame_sec", object), ("vididx", object)])
    for i in range(n_images):
        rows = np.flatnonzero(test_annot.index == i)
        if i in test_images:
            people = max([int(test_annot.person[r]) for r in rows] + [0]) + 1
            rects = np.zeros((1, people), dtype=[("scale", object), ("objpos", object)])
            for p in range(people):
                mine = [r for r in rows if test_annot.person[r] == p]
                c, s = raw_box(test_annot.center[mine[0]], test_annot.scale[mine[0]]) \
                    if mine else ((1.0, 2.0), 1.0)
                objpos = np.zeros((1, 1), dtype=[("x", object), ("y", object)])
                objpos[0, 0] = (np.array([[c[0]]]), np.array([[c[1]]]))
                rects[0, p] = (np.array([[s]]), objpos)
        else:
            rects = np.zeros((1, 1), dtype=[("x1", object), ("y1", object), ("scale", object)])
            rects[0, 0] = (np.array([[1.0]]), np.array([[2.0]]), np.array([[3.0]]))
        image = np.zeros((1, 1), dtype=[("name", object)])
        image[0, 0]["name"] = np.array([f"{i:09d}.jpg"])
        annolist[0, i] = (image, rects, np.zeros((0, 0)), np.zeros((0, 0)))
    img_train = np.array([[0 if i in test_images else 1 for i in range(n_images)]])
    release = np.zeros((1, 1), dtype=[("annolist", object), ("img_train", object),
                                      ("version", object)])
    release[0, 0] = (annolist, img_train, np.array(["12"]))
    scipy.io.savemat(path, {"RELEASE": release})


def test_finalize_mpii_submission_as_the_test_server_reads_it(hgx, learned, tmp_path):
    """pred = RELEASE.annolist(img_train == 0), one entry per test image in release order,
    test.h5 row r at pred(index_r+1).annorect(person_r+1).annopoints.point (x, y, id 0..15),
    the rects' objpos/scale as the release has them (eval-mpii-pose prepareTestResults.m)."""
    from hgx.data import open_split

    test = open_split(_learned_opts(learned), "test").annot
    n_images = int(test.index.max()) + 3
    extra = n_images - 1  # a test image without a test.h5 person: kept as the release has it
    _release(tmp_path / "release.mat", test, n_images, extra)
    code, out = hgx("finalize", "learned", "--mpii-release", str(tmp_path / "release.mat"))
    assert code == 0, out
    mat_path = learned / "pred_keypoints_mpii.mat"
    assert str(mat_path) in out
    with h5py.File(learned / "final_preds.h5") as f:
        preds = f["preds"][()]
    mat = scipy.io.loadmat(mat_path, struct_as_record=False)
    assert set(k for k in mat if not k.startswith("__")) == {"pred"}
    pred = mat["pred"]
    rel = scipy.io.loadmat(tmp_path / "release.mat", struct_as_record=False)["RELEASE"][0, 0]
    test_images = np.flatnonzero(rel.img_train[0] == 0)
    assert pred.shape == (1, len(test_images))  # evaluatePCKh.m:38's length check
    position = {int(img): k for k, img in enumerate(test_images)}
    for r in range(len(test.index)):
        entry = pred[0, position[int(test.index[r])]]
        rect = entry.annorect[0, int(test.person[r])]
        points = rect.annopoints[0, 0].point
        assert points.shape == (1, 16)
        xs = [points[0, j].x[0, 0] for j in range(16)]
        ys = [points[0, j].y[0, 0] for j in range(16)]
        ids = [points[0, j].id[0, 0] for j in range(16)]
        np.testing.assert_allclose(np.stack([xs, ys], 1), preds[r])
        assert ids == list(range(16))
        released = rel.annolist[0, int(test.index[r])].annorect[0, int(test.person[r])]
        assert rect.objpos[0, 0].x[0, 0] == released.objpos[0, 0].x[0, 0]
        assert rect.scale[0, 0] == released.scale[0, 0]
        assert entry.image[0, 0].name[0] == f"{int(test.index[r]):09d}.jpg"
    untouched = pred[0, position[extra]].annorect[0, 0]
    assert not hasattr(untouched, "annopoints") or untouched.annopoints.size == 0
    # a release that does not hold these people: refused, nothing written
    code, out = hgx("finalize", "learned", "--mpii-release", str(tmp_path / "missing.mat"))
    assert code == 2 and "not found" in out
    _release(tmp_path / "small.mat", test, 2, 1)
    mat_path.unlink()
    code, out = hgx("finalize", "learned", "--mpii-release", str(tmp_path / "small.mat"))
    assert code == 1 and "outside the release" in out and not mat_path.exists()


def test_valid_round_trip_scores_the_same_and_has_power(hgx, learned):
    """Predictions written by finalize score as eval on the experiment does, on a model that
    has learned enough that a misaligned row order would show."""
    assert hgx("finalize", "learned", "--split", "valid", "--snapshot", "last")[0] == 0
    from hgx.data import open_split

    gt = open_split(_learned_opts(learned), "valid").annot.path
    code, out = hgx("eval", "--preds", str(learned / "valid_preds.h5"), "--gt", str(gt),
                    "--json")
    assert code == 0, out
    from_file = json.loads(hgx.stdout)
    code, out = hgx("eval", "learned", "--snapshot", "last", "--json")
    direct = json.loads(hgx.stdout)  # only JSON on stdout: progress went to stderr
    assert "predict valid" in out
    assert from_file["Mean"] == pytest.approx(direct["Mean"])
    assert direct["Mean"] > 10  # about 20: not the ~1 of an untrained model
    assert direct["produced_by"]["flip"] and direct["produced_by"]["snapshot"].endswith(".pt")
    with h5py.File(learned / "valid_preds.h5", "a") as f:
        f["preds"][...] = np.roll(f["preds"][()], 1, axis=0)  # rows shifted by one person
    code, out = hgx("eval", "--preds", str(learned / "valid_preds.h5"), "--gt", str(gt),
                    "--json")
    assert json.loads(hgx.stdout)["Mean"] < direct["Mean"] / 2


def test_flip_testing_numbers(learned):
    """--flip averages the heatmaps with the mirrored image's, left and right swapped back:
    checked against that computation done by hand on the same crops."""
    import torch

    from hgx.data import labels, open_split
    from hgx.data.batch import collate, to_device
    from hgx.engine.device import setup_runtime
    from hgx.engine.finalize import load_model_for
    from hgx.engine.predict import predict
    from hgx.experiment import Experiment

    loaded = load_model_for(Experiment(learned), "best")
    ds = open_split(loaded.opts, "valid")
    runtime = setup_runtime(loaded.opts)
    flipped = predict(loaded.model, ds, runtime, batch=8, flip=True)
    plain = predict(loaded.model, ds, runtime, batch=8, flip=False)
    expect = []
    for first in range(0, len(ds), 8):  # the same batches, precision and crops as predict's
        batch = collate([ds[(r, 0, r)] for r in range(first, min(first + 8, len(ds)))])
        images, _ = to_device(batch, runtime.device, runtime.channels_last, ds.output_res,
                              ds.opts.hm_sigma, heatmaps=False)
        with torch.no_grad(), runtime.autocast():
            h = loaded.model(images)[-1].float()
            m = loaded.model(images.flip(-1))[-1].float().flip(-1)
        by_hand = (h + m[:, MPII_FLIP]) / 2
        coords = labels.decode(by_hand)[0].numpy()
        expect.append(np.stack([T.apply(mm, c) for mm, c in
                                zip(batch.meta["hm_to_image"], coords)]))
    expect = np.concatenate(expect)
    np.testing.assert_allclose(flipped.preds, expect, atol=1e-3)
    assert np.abs(flipped.preds - plain.preds).max() > 1  # the mirrored pass changes numbers


MPII_FLIP = [5, 4, 3, 2, 1, 0, 6, 7, 8, 9, 15, 14, 13, 12, 11, 10]  # pose-hg-train mpii.lua:7-8


def test_eval_flip_and_scales_run(hgx, learned, tmp_path):
    code, out = hgx("eval", "learned", "--scales", "1", "1.25", "--plot",
                    str(tmp_path / "curve.png"))
    assert code == 0, out
    assert "Mean" in out and (tmp_path / "curve.png").stat().st_size > 0
    code, out = hgx("eval", "learned", "--scales", "pyranet", "--json")
    assert code == 0, out
    result = json.loads(hgx.stdout)
    assert result["produced_by"]["scales"] == [0.8, 0.9, 1.0, 1.1, 1.2, 1.3]
    assert result["Mean"] > 5  # the learned model still finds people through the fusion


def test_finalize_load_model_without_experiment(hgx, tmp_path):
    peer = SHARED / "fixtures/peer-checkpoints/princeton_vl_pytorch_stacked_hourglass/checkpoint.pt"
    require_shared(peer)
    assert hgx("new", "warm", *TINY, "--epochs", "1")[0] == 0  # makes the synthetic set
    from hgx.data.synth import synth_cache_dir

    data = synth_cache_dir(0, (160, 120), 24, 8, 4)
    out_file = tmp_path / "peer.h5"
    code, out = hgx("finalize", "--load-model", str(peer), "--data-dir", str(data), "--out",
                    str(out_file))
    assert code == 0, out
    with h5py.File(out_file) as f:
        assert f["preds"].shape == (4, 16, 2)


@pytest.mark.parametrize("name,mean", [("valid-ours.h5", 87.56), ("bearpaw-hg_s8_b1.mat", 88.64)])
def test_eval_preds_on_published_files(hgx, name, mean):
    preds = SHARED / "data/mpii/preds" / name
    gt = SHARED / "data/mpii/eval/detections_our_format.mat"
    require_shared(preds, gt)
    code, out = hgx("eval", "--preds", str(preds), "--gt", str(gt), "--json")
    assert code == 0, out
    assert round(json.loads(hgx.stdout)["Mean"], 2) == mean


def test_eval_errors_are_one_line(hgx, tmp_path):
    code, out = hgx("eval")
    assert code == 2 and "give experiment NAMEs" in out
    code, out = hgx("eval", "--preds", str(tmp_path / "nope.h5"), "--gt", str(tmp_path / "x"))
    assert code == 2 and "not found" in out
    code, out = hgx("finalize", "ghost")
    assert code == 1 and "no experiment 'ghost'" in out
