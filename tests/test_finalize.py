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
from hgx.engine.predict import flip_back, to_reference_frame


def test_to_reference_frame_keeps_joint_positions():
    """A joint seen in a box f times larger lands at the same place in the reference frame."""
    rng = np.random.default_rng(0)
    for f in (0.75, 1.25, 1.5):
        center, scale = np.array([300.0, 200.0]), 2.0
        joint = center + rng.uniform(-60, 60, 2)
        m_ref = T.crop_matrix(center, scale, 0, 64)
        m_f = T.crop_matrix(center, scale * f, 0, 64)
        hm = torch.from_numpy(T.draw_heatmaps(T.apply(m_f, joint[None]), [True], 64))[None]
        ref = to_reference_frame(hm, f).numpy()
        xy, _ = T.decode(ref)
        assert np.abs(T.apply(T.invert(m_ref), xy)[0, 0] - joint).max() < 2 * 200 * scale / 64


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
