"""Scoring a dataset's split: its annotations as an evaluation ground truth (PCKh head unit, or
torso PCK's unit), the table each dataset reports, and the validation PCKh of training.
"""
from __future__ import annotations

import numpy as np

from hgx.errors import HgxError


def ground_truth(annot, skeleton, rows=None):
    """Annotations as an evaluation ground truth (PCKh head unit or torso size)."""
    from hgx.eval.io import GroundTruth, annotated_missing, torso_unit

    rows = np.arange(len(annot)) if rows is None else rows
    part, norm = annot.part[rows], annot.normalize[rows]
    missing = annotated_missing(part)
    if skeleton.pck_norm == "head":
        norm = np.where(norm > 0, norm, np.nan)
    else:
        norm = torso_unit(part, missing, skeleton, norm)
    return GroundTruth(part, missing, norm, skeleton.name, str(annot.path))


def score_rows(preds: np.ndarray, annot, skeleton, rows=None) -> dict:
    """The table of a dataset: MPII's PCKh (both conventions), torso PCK@0.2 for FLIC/LSP/COCO,
    and a per-joint PCKh@0.5 (strict <) for other head-normalised skeletons."""
    from hgx.data.joints import MPII
    from hgx.eval.pck import normalized_distances, pck, pckh

    gt = ground_truth(annot, skeleton, rows)
    if skeleton.joints == MPII.joints and skeleton.pck_norm == "head":
        gt.skeleton = MPII.name
        return pckh(preds, gt)
    if skeleton.pck_norm != "head":
        return pck(preds, gt, skeleton=skeleton)
    dist, valid = normalized_distances(preds, gt)
    rates = [100.0 * float((dist[valid[:, j], j] < 0.5).mean()) if valid[:, j].any() else None
             for j in range(skeleton.num_joints)]
    known = [r for r in rates if r is not None]
    return {"Mean": float(np.mean(known)) if known else None,
            "per_joint": dict(zip(skeleton.joints, rates)), "count": int(len(dist))}


def score(preds: np.ndarray, dataset) -> dict:
    """The dataset's table; for torso-PCK datasets (FLIC, LSP) also the score against the
    other-centric labels when a file of them lies beside the split's (``centric`` names whose
    left and right the main table's labels are; ``person_centric`` / ``observer_centric`` hold
    the other table), as eval_pose's demo_eval_lsp.m reports both."""
    from hgx.data.dataset import read_annotations
    from hgx.data.formats import alternates, centricity

    annot, skeleton = dataset.annot, dataset.skeleton
    if not annot.present.any():
        raise HgxError(f"{annot.path} has no ground-truth joints (a test split?); "
                       "use `hgx finalize` to write predictions instead")
    result = score_rows(preds, annot, skeleton)
    if skeleton.pck_norm != "torso" or annot.path.name == "annot.h5":
        return result
    centric = centricity(annot.path)
    if centric:
        result["centric"] = centric
    for other, path in alternates(annot.path).items():
        if other == centric:
            continue
        labels = read_annotations(path, skeleton.num_joints)
        if len(labels) == len(annot):
            result[f"{other}_centric"] = score_rows(preds, labels, skeleton)
    return result


def validation_pck(preds: np.ndarray, annot, rows: np.ndarray, skeleton) -> float:
    """PCK Mean of the validated rows (PCKh@0.5 papers' convention for MPII); NaN when the
    split has no unit to normalise by."""
    if skeleton.pck_norm == "head" and not np.isfinite(annot.normalize[rows]).any():
        return float("nan")
    mean = score_rows(preds, annot, skeleton, rows).get("Mean")
    return float("nan") if mean is None else float(mean)
