"""eval and finalize end to end on the synthetic set, plus the multi-scale/flip geometry."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import scipy.io
import torch

from conftest import SHARED, TINY
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


def test_finalize_test_split_and_valid_round_trip(hgx):
    assert hgx("new", "m", *TINY, "--epochs", "1")[0] == 0
    code, out = hgx("finalize", "m")
    assert code == 0, out
    final = hgx.root / "m" / "final_preds.h5"
    from hgx.data import open_split
    from hgx import options as hopts
    import yaml

    opts = hopts.Options(**yaml.safe_load((hgx.root / "m" / "options.yaml").read_text()))
    test = open_split(opts, "test")
    with h5py.File(final) as f:
        assert f["preds"].shape == (len(test), 16, 2)
        # rows in the order of the split's annotation file, not shuffled
        assert [n.decode() for n in f["imgname"][()]] == test.annot.imgname
        assert np.isfinite(f["preds"][()]).all()
    mat = scipy.io.loadmat(final.with_suffix(".mat"), squeeze_me=True, struct_as_record=False)
    assert mat["preds"].shape == (2, 16, len(test))
    first = np.atleast_1d(mat["pred"])[0]
    assert hasattr(first, "annorect") and hasattr(first, "image")
    # validation predictions written by finalize score the same as eval on the experiment
    assert hgx("finalize", "m", "--split", "valid", "--snapshot", "last")[0] == 0
    gt = test.annot.path.parent / "valid.h5"
    code, out = hgx("eval", "--preds", str(hgx.root / "m" / "valid_preds.h5"), "--gt", str(gt),
                    "--json")
    assert code == 0, out
    from_file = json.loads(out)
    code, out = hgx("eval", "m", "--snapshot", "last", "--json")
    direct = json.loads(out[out.index("{"):])
    assert from_file["Mean"] == pytest.approx(direct["Mean"])
    assert set(direct) >= {"Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean",
                           "UBody", "Total"}


def test_eval_flip_and_scales_run(hgx, tmp_path):
    assert hgx("new", "m", *TINY, "--epochs", "1")[0] == 0
    code, out = hgx("eval", "m", "--flip", "--scales", "1", "1.25", "--plot",
                    str(tmp_path / "curve.png"))
    assert code == 0, out
    assert "Mean" in out and (tmp_path / "curve.png").stat().st_size > 0


def test_finalize_load_model_without_experiment(hgx, tmp_path):
    peer = SHARED / "fixtures/peer-checkpoints/princeton_vl_pytorch_stacked_hourglass/checkpoint.pt"
    if not peer.is_file():
        pytest.skip("../shared/fixtures is absent (a user's clone has none)")
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
    if not preds.is_file():
        pytest.skip("../shared/data is absent (a user's clone has none)")
    code, out = hgx("eval", "--preds", str(preds), "--gt", str(gt), "--json")
    assert code == 0, out
    assert round(json.loads(out)["Mean"], 2) == mean


def test_eval_errors_are_one_line(hgx, tmp_path):
    code, out = hgx("eval")
    assert code == 2 and "give experiment NAMEs" in out
    code, out = hgx("eval", "--preds", str(tmp_path / "nope.h5"), "--gt", str(tmp_path / "x"))
    assert code == 2 and "not found" in out
    code, out = hgx("finalize", "ghost")
    assert code == 1 and "no experiment 'ghost'" in out
