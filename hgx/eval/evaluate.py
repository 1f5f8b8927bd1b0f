"""One-call evaluation of a predictions file against a ground-truth file."""
from __future__ import annotations

from pathlib import Path

from hgx.data.joints import Skeleton
from hgx.errors import HgxError

from .io import GroundTruth, load_gt, load_preds, resolve_skeleton
from .pck import pck, pckh

__all__ = ["evaluate"]


def evaluate(
    preds_path: str | Path,
    gt_path: str | Path,
    skeleton: str | Skeleton | None = None,
) -> dict:
    """Load both files, check they describe the same people and joints, and score them.

    Head-normalised skeletons (MPII) get :func:`pckh` (PCKh@0.5), torso-normalised ones
    (FLIC, LSP) :func:`pck` (PCK@0.2). The skeleton is told by the joint count unless given.
    """
    gt = load_gt(gt_path, skeleton)
    preds = load_preds(preds_path)
    if gt.num_people == 2 * preds.shape[0] and gt.skeleton == "lsp":
        # LSP's joints.mat holds train and test halves; predictions are of images 1001-2000
        # (eval_pose demo_eval_lsp.m:30 scores joints(:,:,1001:end))
        half = preds.shape[0]
        gt = GroundTruth(gt.joints[half:], gt.missing[half:], gt.norm[half:], gt.skeleton,
                         gt.path)
    if preds.shape[:2] != gt.joints.shape[:2]:
        raise HgxError(
            f"predictions {preds_path} have {preds.shape[0]} people x {preds.shape[1]} joints "
            f"but ground truth {gt_path} has {gt.joints.shape[0]} x {gt.joints.shape[1]}: "
            f"pass the predictions and ground truth of the same split"
        )
    skel = resolve_skeleton(gt.skeleton, gt.num_joints)
    if skel.pck_norm == "head":
        return pckh(preds, gt)
    return pck(preds, gt, skeleton=skel)
