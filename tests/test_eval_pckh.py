"""Evaluation library: PCKh (MPII, both conventions), torso PCK (FLIC/LSP), loaders, table, plot.

The real-data tests read the shared data set beside the clone (``../shared/data``, see its
README); a user's clone has none, so those tests skip.
"""
from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as scipy_io

from conftest import require_shared
import scipy.io

from hgx.data.joints import FLIC, LSP, MPII
from hgx.errors import HgxError
from hgx.eval import (
    GroundTruth,
    evaluate,
    format_table,
    load_gt,
    load_preds,
    pck,
    pckh,
    plot_curves,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MPII_DIR = DATA / "mpii"
GT_MAT = MPII_DIR / "eval" / "detections_our_format.mat"
GT_H5 = MPII_DIR / "annot" / "valid.h5"
PREDS = MPII_DIR / "preds"
FLIC_GT = DATA / "flic" / "annot" / "valid.h5"

@pytest.fixture
def shared_mpii():
    require_shared(GT_MAT, GT_H5, PREDS)


needs_data = pytest.mark.usefixtures("shared_mpii")

GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
TOP_KEYS = {
    *GROUPS, "Mean", "UBody", "Total", "official", "per_joint", "thresholds", "curves", "count",
}

# Published tables (papers' convention: Head Shoulder Elbow Wrist Hip Knee Ankle Mean)
PUBLISHED = {
    # shared/data/README.md (Newell et al., pose-hg-demo)
    "valid-ours.h5": (95.94, 94.68, 88.53, 83.38, 87.48, 83.09, 79.05, 87.56),
    # bearpaw/pytorch-pose README, rows "hg_s2_b1 (last)" and "hg_s8_b1 (last)"
    "bearpaw-hg_s2_b1.mat": (95.80, 94.57, 88.12, 83.31, 86.24, 80.88, 77.44, 86.76),
    "bearpaw-hg_s8_b1.mat": (96.79, 95.19, 90.08, 85.32, 87.48, 84.26, 80.73, 88.64),
    # jameelhassan/PoseEstimation, "final checkpoint/log.txt" (its preds_best.mat)
    "poseestimation-preds.mat": (58.36, 69.40, 68.45, 63.64, 73.52, 49.10, 27.19, 59.59),
}


@pytest.fixture(scope="module")
def gt_mat() -> GroundTruth:
    return load_gt(GT_MAT)


@pytest.fixture(scope="module")
def ours(gt_mat) -> dict:
    return pckh(load_preds(PREDS / "valid-ours.h5"), gt_mat)


# --------------------------------------------------------------------------- real MPII data
@needs_data
def test_published_table_valid_ours(ours):
    table = dict(zip((*GROUPS, "Mean"), PUBLISHED["valid-ours.h5"]))
    for key, value in table.items():
        assert round(ours[key], 2) == value, key
    official = {"Head": 96.71, "UBody": 88.88, "Total": 88.04}
    for key, value in official.items():
        assert round(ours["official"][key], 2) == value, key
    # top-level UBody/Total are the official pooled figures
    assert ours["UBody"] == ours["official"]["UBody"]
    assert ours["Total"] == ours["official"]["Total"]
    assert ours["count"] == 2958


@needs_data
def test_result_shape_is_json_and_has_no_16_joint_accuracy(ours):
    assert set(ours) == TOP_KEYS
    assert set(ours["official"]) == {*GROUPS, "UBody", "Total"}
    assert list(ours["per_joint"]) == list(MPII.joints)
    json.dumps(ours, allow_nan=False)
    # curves: 0, 0.01, ..., 0.5, non-decreasing, ending at the table values
    assert len(ours["thresholds"]) == 51 and ours["thresholds"][-1] == 0.5
    for group, curve in ours["curves"].items():
        assert len(curve) == 51
        assert np.all(np.diff(curve) >= 0), group
        assert curve[-1] == pytest.approx(ours[group]), group


@needs_data
@pytest.mark.parametrize("name", [n for n in PUBLISHED if n != "valid-ours.h5"])
def test_other_published_tables(name, gt_mat):
    result = pckh(load_preds(PREDS / name), gt_mat)
    got = tuple(round(result[k], 2) for k in (*GROUPS, "Mean"))
    assert got == PUBLISHED[name]


@needs_data
def test_unpublished_preds_are_plausible(gt_mat, ours):
    # tompson.h5 is stored (2, 16, N): read right, it scores like Tompson et al. (CVPR'15)
    tompson = pckh(load_preds(PREDS / "tompson.h5"), gt_mat)
    assert 78 < tompson["Mean"] < 85
    # newell.h5: the same 8-stack model, another export; within half a point of valid-ours
    newell = pckh(load_preds(PREDS / "newell.h5"), gt_mat)
    assert abs(newell["Mean"] - ours["Mean"]) < 1.0
    assert abs(newell["official"]["Total"] - ours["official"]["Total"]) < 1.0
    s1 = pckh(load_preds(PREDS / "bearpaw-hg_s1_b1.mat"), gt_mat)
    assert 80 < s1["Mean"] < 88


@needs_data
def test_valid_h5_ground_truth_matches_mat(ours, gt_mat):
    """pose-hg-train's valid.h5 gives (almost) the same tables as detections_our_format.mat.

    Same people, same missing joints ((0, 0) in valid.h5 == jnt_missing), head units equal to
    6e-5 px; but neck and head-top are truncated to integers in valid.h5 and 13 joints differ
    (a zero coordinate in the .mat). Measured on valid-ours.h5: Head -0.07, official Head
    -0.02, Ankle +0.02, everything else identical at 2 decimals.
    """
    gt_h5 = load_gt(GT_H5)
    assert gt_h5.skeleton == "mpii"
    np.testing.assert_array_equal(gt_h5.missing, gt_mat.missing)
    np.testing.assert_allclose(gt_h5.norm, gt_mat.norm, atol=1e-3)
    r = pckh(load_preds(PREDS / "valid-ours.h5"), gt_h5)
    for key in (*GROUPS, "Mean"):
        assert abs(r[key] - ours[key]) <= 0.1, key
    for key, value in r["official"].items():
        assert abs(value - ours["official"][key]) <= 0.1, key
    for key in ("Shoulder", "Elbow", "Wrist", "Knee"):
        assert round(r[key], 2) == round(ours[key], 2)


@needs_data
def test_evaluate_dispatches_and_checks_counts(tmp_path):
    r = evaluate(PREDS / "valid-ours.h5", GT_MAT)
    assert round(r["Mean"], 2) == 87.56
    short = tmp_path / "short.h5"
    with h5py.File(short, "w") as f:
        f["preds"] = load_preds(PREDS / "valid-ours.h5")[:-1]
    with pytest.raises(HgxError) as err:
        evaluate(short, GT_MAT)
    msg = str(err.value)
    assert "short.h5" in msg and "detections_our_format.mat" in msg
    assert "2957" in msg and "2958" in msg


# ----------------------------------------------------------------------------- loaders
def _synthetic_mpii(n: int = 5, unit: float = 2.0) -> GroundTruth:
    rng = np.random.default_rng(0)
    joints = rng.integers(10, 200, size=(n, 16, 2)).astype(np.float64)
    return GroundTruth(
        joints=joints, missing=np.zeros((n, 16), bool), norm=np.full(n, unit), skeleton="mpii"
    )


def test_both_pred_layouts_load_the_same(tmp_path):
    preds = np.random.default_rng(1).uniform(0, 500, size=(7, 16, 2))
    files = {
        "njc.h5": preds,
        "cjn.h5": preds.transpose(2, 1, 0),
    }
    for name, arr in files.items():
        with h5py.File(tmp_path / name, "w") as f:
            f["preds"] = arr
    scipy.io.savemat(tmp_path / "njc.mat", {"preds": preds.astype(np.float32)})
    scipy.io.savemat(tmp_path / "cjn.mat", {"preds": preds.transpose(2, 1, 0)})
    for name in ("njc.h5", "cjn.h5", "cjn.mat"):
        loaded = load_preds(tmp_path / name)
        assert loaded.shape == (7, 16, 2) and loaded.dtype == np.float64
        np.testing.assert_array_equal(loaded, preds)
    np.testing.assert_allclose(load_preds(tmp_path / "njc.mat"), preds, rtol=1e-6)


@needs_data
def test_both_pred_layouts_same_result(tmp_path, ours):
    preds = load_preds(PREDS / "valid-ours.h5")
    path = tmp_path / "transposed.mat"
    scipy.io.savemat(path, {"preds": preds.transpose(2, 1, 0)})
    r = evaluate(path, GT_MAT)
    assert {k: r[k] for k in TOP_KEYS} == ours
    assert load_preds(PREDS / "tompson.h5").shape == (2958, 16, 2)


def test_bad_prediction_files(tmp_path):
    with h5py.File(tmp_path / "nokey.h5", "w") as f:
        f["predictions"] = np.zeros((3, 16, 2))
    with h5py.File(tmp_path / "shape.h5", "w") as f:
        f["preds"] = np.zeros((3, 16, 3))
    (tmp_path / "text.h5").write_text("not a data file\n")
    cases = {
        "nokey.h5": "'preds'",
        "shape.h5": "(3, 16, 3)",
        "text.h5": "neither HDF5 nor",
        "absent.h5": "does not exist",
    }
    for name, words in cases.items():
        with pytest.raises(HgxError) as err:
            load_preds(tmp_path / name)
        assert name in str(err.value) and words in str(err.value), str(err.value)
        assert "\n" not in str(err.value)


def test_gt_h5_missing_joints_and_skeleton(tmp_path):
    part = np.random.default_rng(2).uniform(1, 100, size=(4, 16, 2))
    part[1, 9] = 0  # missing head-top
    with h5py.File(tmp_path / "annot.h5", "w") as f:
        f["part"] = part
        f["normalize"] = np.full(4, 10.0)
        f["visible"] = np.zeros((4, 16))  # invisible but annotated still counts
    gt = load_gt(tmp_path / "annot.h5")
    assert gt.skeleton == "mpii" and gt.missing.sum() == 1 and gt.missing[1, 9]
    with pytest.raises(HgxError, match="flic"):
        load_gt(tmp_path / "annot.h5", skeleton="flic")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["part"] = np.zeros((2, 9, 2))
    with pytest.raises(HgxError, match="9 joints"):
        load_gt(tmp_path / "bad.h5")


# ------------------------------------------------------------------------ PCKh semantics
def test_perfect_predictions_score_100():
    gt = _synthetic_mpii()
    r = pckh(gt.joints.copy(), gt)
    for key in (*GROUPS, "Mean", "UBody", "Total"):
        assert r[key] == 100.0
    assert all(v == 100.0 for v in r["official"].values())
    assert all(v == 100.0 for v in r["per_joint"].values())


def test_exactly_half_a_head_unit_strict_vs_inclusive():
    gt = _synthetic_mpii(unit=2.0)
    preds = gt.joints + np.array([1.0, 0.0])  # exactly 0.5 head units away
    r = pckh(preds, gt)
    for key in (*GROUPS, "Mean"):
        assert r[key] == 0.0, key  # papers: strict <
    assert all(v == 100.0 for v in r["official"].values())  # official: <=
    assert r["UBody"] == r["Total"] == 100.0


def test_missing_joints_do_not_count():
    gt = _synthetic_mpii(n=4)
    gt.missing[0, MPII.index("l_wrist")] = True
    gt.missing[:3, MPII.index("r_ankle")] = True
    preds = gt.joints.copy()
    preds[0, MPII.index("l_wrist")] += 1000  # wrong, but not annotated
    preds[:3, MPII.index("r_ankle")] = np.nan  # likewise
    preds[3, MPII.index("l_ankle")] += 1000  # wrong and annotated: 1 of 4 l_ankles
    r = pckh(preds, gt)
    assert r["Wrist"] == 100.0
    assert r["per_joint"]["r_ankle"] == 100.0  # 1 of 1 counted
    assert r["per_joint"]["l_ankle"] == 75.0
    assert r["Ankle"] == pytest.approx(87.5)
    # pooled Total: 14 joints x 4 people - 4 missing = 52 instances, 1 wrong
    assert r["Total"] == pytest.approx(100 * 51 / 52)


def test_mismatched_shapes_raise():
    gt = _synthetic_mpii(n=5)
    with pytest.raises(HgxError, match="4 people"):
        pckh(gt.joints[:4], gt)


# ------------------------------------------------------------------------ torso PCK
def test_flic_pck_known_offsets():
    require_shared(FLIC_GT)
    gt = load_gt(FLIC_GT)
    assert gt.skeleton == "flic" and gt.num_people == 1016
    # the unit is the file's `normalize`, as pose-hg-train's pypose/eval.py divides by it: the
    # person-centric torso, which the observer-centric joints of valid.h5 do not give for the
    # people seen from behind
    with h5py.File(FLIC_GT) as f:
        np.testing.assert_allclose(gt.norm, f["normalize"][()])
    a, b = FLIC.torso
    from_joints = np.linalg.norm(gt.joints[:, a] - gt.joints[:, b], axis=-1)
    off = np.abs(from_joints / gt.norm - 1)
    assert (off > 1e-4).sum() == 48 and off.max() == pytest.approx(0.1778, abs=1e-4)  # 17.8%
    torso = gt.norm[:, None]
    preds = gt.joints.copy()
    wrists = [FLIC.index("l_wrist"), FLIC.index("r_wrist")]
    elbows = [FLIC.index("l_elbow"), FLIC.index("r_elbow")]
    preds[:, wrists, 0] += 0.1 * torso  # within 0.2 torso: correct
    preds[:, elbows, 1] += 0.3 * torso  # beyond: wrong
    half = gt.num_people // 2
    preds[:half, FLIC.index("nose"), 0] -= 0.25 * torso[:half, 0]  # half the noses wrong
    r = pck(preds, gt)
    assert r["Wrist"] == 100.0 and r["Elbow"] == 0.0
    assert r["Shoulder"] == r["Hip"] == r["Eye"] == 100.0
    assert r["Nose"] == pytest.approx(100 * (gt.num_people - half) / gt.num_people)
    assert r["per_joint"]["l_elbow"] == 0.0
    assert r["Mean"] == pytest.approx((8 * 100 + 2 * 0 + r["Nose"]) / 11)  # 11 joints
    assert r["thresholds"][-1] == pytest.approx(0.2) and len(r["thresholds"]) == 21
    # curves: wrists (0.1 torso away) are wrong at 0.09 and right at 0.11; elbows never
    assert r["curves"]["Wrist"][9] == 0.0 and r["curves"]["Wrist"][11] == 100.0
    assert max(r["curves"]["Elbow"]) == 0.0
    json.dumps(r, allow_nan=False)


def test_lsp_pck_synthetic(tmp_path):
    n = 10
    rng = np.random.default_rng(3)
    part = rng.uniform(50, 150, size=(n, 14, 2))
    # torso l_shoulder -> r_hip (eval_pose utils/eval_pck.m:36) = exactly 100 px; the other
    # diagonal is longer and must not be used
    part[:, LSP.index("l_shoulder")] = [100.0, 100.0]
    part[:, LSP.index("r_hip")] = [100.0, 200.0]
    part[:, LSP.index("r_shoulder")] = [30.0, 100.0]
    part[:, LSP.index("l_hip")] = [160.0, 220.0]
    with h5py.File(tmp_path / "lsp.h5", "w") as f:
        f["part"] = part
    gt = load_gt(tmp_path / "lsp.h5")
    assert gt.skeleton == "lsp"
    np.testing.assert_allclose(gt.norm, 100.0)
    preds = part.copy()
    preds[:, LSP.index("head_top"), 0] += 30.0  # 0.3 torso: wrong
    preds[:4, LSP.index("r_knee"), 1] += 15.0  # 0.15: right
    preds[:4, LSP.index("l_knee"), 1] += 25.0  # 0.25: wrong for 4 of 10
    with h5py.File(tmp_path / "lsp_preds.h5", "w") as f:
        f["preds"] = preds
    r = evaluate(tmp_path / "lsp_preds.h5", tmp_path / "lsp.h5")
    assert list(r)[:7] == ["Ankle", "Knee", "Hip", "Wrist", "Elbow", "Shoulder", "Head"]
    assert r["Head"] == 50.0  # mean of neck (100) and head-top (0)
    assert r["Knee"] == pytest.approx(80.0)
    for key in ("Shoulder", "Elbow", "Wrist", "Hip", "Ankle"):
        assert r[key] == 100.0
    assert r["Mean"] == pytest.approx((12 * 100 + 0 + 60) / 14)
    assert set(r) == {*GROUPS, "Mean", "per_joint", "thresholds", "curves", "count"}


# ------------------------------------------------------------------------ table and plot
def test_format_table_rows():
    gt = _synthetic_mpii()
    table = format_table(pckh(gt.joints, gt))
    headers = [c.header for c in table.columns]
    assert headers[1:] == [*GROUPS, "Mean", "UBody", "Total"]
    assert table.row_count == 2


def test_plot_curves_legend_and_file(tmp_path):
    from matplotlib.figure import Figure

    gt = _synthetic_mpii(n=20)
    rng = np.random.default_rng(4)
    results = {
        "good": pckh(gt.joints + rng.normal(0, 0.3, gt.joints.shape), gt),
        "bad": pckh(gt.joints + rng.normal(0, 1.0, gt.joints.shape), gt),
    }
    fig = plot_curves(results, tmp_path / "curves.png")
    assert isinstance(fig, Figure)
    assert (tmp_path / "curves.png").stat().st_size > 0
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["good", "bad"]
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == [*GROUPS, "Mean", "UBody", "Total"]
    plot_curves(results, tmp_path / "curves.svg")
    assert (tmp_path / "curves.svg").read_text().lstrip().startswith("<?xml")
    with pytest.raises(HgxError, match=".bmp"):
        plot_curves(results, tmp_path / "curves.bmp")


def test_person_and_observer_centric_pck_of_an_lsp_split(tmp_path):
    """hgx eval of an LSP split reports the labels' own PCK (person-centric) and, with the
    observer-centric labels beside it, that one too (eval_pose demo_eval_lsp.m scores both)."""
    from hgx.data import prepare
    from hgx.data.dataset import PoseDataset, read_annotations
    from hgx.eval.score import score
    from hgx import options as hopts

    rng = np.random.default_rng(5)
    part = rng.uniform(40, 160, size=(2000, 14, 2))
    occluded = np.zeros((2000, 14))
    observer = part.copy()
    sym = [5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 12, 13]
    observer[1500:] = part[1500:, sym]  # the last 500 seen from behind: left and right swap
    for name, p in (("pc.mat", part), ("oc.mat", observer)):
        j = np.concatenate([p.transpose(2, 1, 0), occluded.T[None]], 0)
        scipy_io.savemat(tmp_path / name, {"joints": j})
    (tmp_path / "images").mkdir()
    prepare.prepare_lsp(tmp_path / "pc.mat", tmp_path / "lsp", tmp_path / "images",
                        observer_mat=tmp_path / "oc.mat")
    annot = read_annotations(tmp_path / "lsp/annot/valid.h5", 14)
    ds = PoseDataset(annot, tmp_path / "images", LSP, hopts.resolve(None, None, {}), False)
    r = score(annot.part.copy(), ds)  # person-centric predictions, exactly right
    assert r["centric"] == "person" and r["Mean"] == 100.0
    oc = r["observer_centric"]
    assert oc["Head"] == 100.0 and oc["Ankle"] < 60  # half the people's sides disagree
    json.dumps(r, allow_nan=False)


def test_flic_split_scores_observer_and_person_centric():
    """pose-hg-train's FLIC valid.h5 (observer-centric) with valid_personcentric.h5 beside it:
    both PCK@0.2 tables, each against its own labels and its file's normalize."""
    from hgx.data.dataset import PoseDataset, read_annotations
    from hgx.eval.score import score
    from hgx import options as hopts

    require_shared(FLIC_GT)
    annot = read_annotations(FLIC_GT, 11)
    ds = PoseDataset(annot, FLIC_GT.parent, FLIC, hopts.resolve(None, None, {}), False)
    r = score(annot.part.copy(), ds)  # observer-centric labels as predictions
    assert r["centric"] == "observer" and r["Mean"] == 100.0
    pc = r["person_centric"]
    assert pc["count"] == 1016 and 90 < pc["Wrist"] < 100  # the 48 seen from behind swap
