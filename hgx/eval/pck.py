"""PCKh (MPII) and torso-normalised PCK (FLIC, LSP).

All rates are percentages (0-100). A joint counts only where the ground truth has it
(``GroundTruth.missing`` is False) and the person's distance unit is known; a prediction that is
NaN/inf counts as wrong.

MPII PCKh@0.5 -- :func:`pckh` returns two conventions, both reproduced exactly against the
published numbers of Newell et al.'s 8-stack predictions (``valid-ours.h5``):

* papers' table (Newell et al. 2016, pytorch-pose's README, Tompson's ``eval_PCKh``): a joint is
  correct when its distance is strictly < 0.5 head units; Head = head-top alone; Shoulder ...
  Ankle = mean of the left and right per-joint rates; Mean = unweighted mean of the 14 per-joint
  rates (pelvis and thorax excluded).
* official MPII (``evalMPII.m``: ``computePCK.m`` + ``genTablePCK.m``): correct when distance
  <= 0.5; Head = mean of the upper-neck and head-top rates; the other columns = mean of left and
  right; UBody = pooled over all annotated instances of shoulders, elbows and wrists (the six
  arm joints; neck and head are NOT in it, whatever the name suggests -- that is what gives the
  published 88.88); Total = pooled over all annotated instances of the 14 joints (pelvis and
  thorax excluded).

The top-level ``UBody`` and ``Total`` of the result are these official pooled figures (the
papers' table has no such columns). There is deliberately no 16-joint pooled "accuracy": it is
not comparable with any published number.

Torso PCK -- :func:`pck`: correct when distance <= threshold x torso size (bearpaw/eval_pose
utils/eval_pck.m:59 and pose-hg-train src/pypose/eval.py:62 compare ``<=``). The unit is the
annotation's ``normalize`` where the ground truth has one (FLIC: pose-hg-train's pypose/eval.py
divides by it), else the distance of the skeleton's two torso joints (LSP: l-shoulder to r-hip,
eval_pck.m:36). FLIC reports Elbow and Wrist (the usual FLIC columns) plus Shoulder, Hip, Eye,
Nose; LSP reports eval_pck.m's columns: Ankle, Knee, Hip, Wrist, Elbow, Shoulder, Head (neck
and head top), each the mean of a joint and its mirror. ``Mean`` pools every annotated joint
(eval_pck.m:65: the mean over all joints of all people), except for FLIC, where it is the mean
of the per-joint rates (pypose/eval.py:81-87).
"""
from __future__ import annotations

import math
import warnings
from typing import Iterable, Sequence

import numpy as np

from hgx.data.joints import Skeleton
from hgx.errors import HgxError

from .io import GroundTruth, resolve_skeleton

__all__ = ["pckh", "pck", "normalized_distances", "PCKH_GROUPS", "OFFICIAL_GROUPS", "PCK_GROUPS"]

# Papers' PCKh table for MPII: group -> joints whose per-joint rates are averaged
PCKH_GROUPS: dict[str, tuple[str, ...]] = {
    "Head": ("head_top",),
    "Shoulder": ("r_shoulder", "l_shoulder"),
    "Elbow": ("r_elbow", "l_elbow"),
    "Wrist": ("r_wrist", "l_wrist"),
    "Hip": ("r_hip", "l_hip"),
    "Knee": ("r_knee", "l_knee"),
    "Ankle": ("r_ankle", "l_ankle"),
}
# The 14 joints of MPII's Mean/Total (pelvis and thorax are left out)
MPII_EVAL_JOINTS: tuple[str, ...] = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow",
    "r_shoulder", "l_shoulder", "l_elbow", "l_wrist", "upper_neck", "head_top",
)
# Official evalMPII.m columns: per-joint-rate means, then pooled UBody / Total
OFFICIAL_GROUPS: dict[str, tuple[str, ...]] = {**PCKH_GROUPS, "Head": ("upper_neck", "head_top")}
OFFICIAL_POOLED: dict[str, tuple[str, ...]] = {
    "UBody": ("r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist"),
    "Total": MPII_EVAL_JOINTS,
}

# Torso-normalised PCK columns, per skeleton name; Mean = all joints
PCK_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "flic": {
        "Elbow": ("r_elbow", "l_elbow"),
        "Wrist": ("r_wrist", "l_wrist"),
        "Shoulder": ("r_shoulder", "l_shoulder"),
        "Hip": ("r_hip", "l_hip"),
        "Eye": ("r_eye", "l_eye"),
        "Nose": ("nose",),
    },
    # bearpaw/eval_pose demo_eval_lsp.m:21-22 + utils/eval_pck.m:14-16: each column the mean of
    # a joint and its mirror, in this order; Head = neck and head top
    "lsp": {
        "Ankle": ("r_ankle", "l_ankle"),
        "Knee": ("r_knee", "l_knee"),
        "Hip": ("r_hip", "l_hip"),
        "Wrist": ("r_wrist", "l_wrist"),
        "Elbow": ("r_elbow", "l_elbow"),
        "Shoulder": ("r_shoulder", "l_shoulder"),
        "Head": ("neck", "head_top"),
    },
}


def _check_inputs(preds: np.ndarray, gt: GroundTruth) -> np.ndarray:
    preds = np.asarray(preds, dtype=np.float64)
    if preds.ndim != 3 or preds.shape[2] != 2:
        raise HgxError(f"predictions have shape {preds.shape}, expected (N, J, 2)")
    if preds.shape[:2] != gt.joints.shape[:2]:
        where = f" ({gt.path})" if gt.path else ""
        raise HgxError(
            f"predictions have {preds.shape[0]} people x {preds.shape[1]} joints but the ground "
            f"truth{where} has {gt.joints.shape[0]} x {gt.joints.shape[1]}: evaluate "
            f"predictions of the same split"
        )
    return preds


def normalized_distances(preds: np.ndarray, gt: GroundTruth, norm: np.ndarray | None = None):
    """(dist, valid): distances in units of ``norm`` (default ``gt.norm``), shape (N, J).

    ``valid`` is False where the joint doesn't count (missing in the ground truth or no unit);
    a non-finite prediction gets distance inf (wrong at every threshold).
    """
    preds = _check_inputs(preds, gt)
    unit = gt.norm if norm is None else np.asarray(norm, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = np.linalg.norm(preds - gt.joints, axis=-1) / unit[:, None]
    valid = ~gt.missing & (np.isfinite(unit) & (unit > 0))[:, None]
    dist = np.where(valid & ~np.isfinite(dist), np.inf, dist)
    dist = np.where(valid, dist, np.nan)
    return dist, valid


def _hits(dist: np.ndarray, valid: np.ndarray, thresholds: np.ndarray, strict: bool):
    """hits (T, J): correct joints at each threshold; counts (J,): joints that count."""
    thresholds = np.asarray(thresholds, dtype=np.float64)
    counts = valid.sum(axis=0)
    hits = np.zeros((thresholds.size, dist.shape[1]), dtype=np.int64)
    side = "left" if strict else "right"  # left: d < t; right: d <= t
    for j in range(dist.shape[1]):
        d = np.sort(dist[valid[:, j], j])
        hits[:, j] = np.searchsorted(d, thresholds, side=side)
    return hits, counts


def _rates(hits: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, 100.0 * hits / np.maximum(counts, 1), np.nan)


def _mean_of(rates: np.ndarray, idx: Sequence[int]) -> np.ndarray:
    """Unweighted mean over joints (last axis) of per-joint rates, ignoring undefined ones."""
    sel = rates[..., list(idx)]
    with warnings.catch_warnings():  # an all-undefined group is NaN (reported as None)
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(sel, axis=-1)


def _pooled(hits: np.ndarray, counts: np.ndarray, idx: Sequence[int]) -> np.ndarray:
    idx = list(idx)
    n = counts[idx].sum()
    if n == 0:
        return np.full(hits.shape[0], np.nan)
    return 100.0 * hits[:, idx].sum(axis=1) / n


def _num(x) -> float | None:
    x = float(x)
    return None if math.isnan(x) else x


def _curve(values: Iterable) -> list[float | None]:
    return [_num(v) for v in values]


def _idx(skel: Skeleton, names: Iterable[str]) -> list[int]:
    return [skel.index(n) for n in names]


def _default_thresholds(upper: float, steps: int) -> np.ndarray:
    return np.linspace(0.0, upper, steps + 1)


def pckh(
    preds: np.ndarray,
    gt: GroundTruth,
    thresholds: Sequence[float] | np.ndarray | None = None,
    threshold: float = 0.5,
) -> dict:
    """MPII PCKh at ``threshold`` head units, papers' table and official figures.

    Returns a JSON-able dict (percentages, None where undefined)::

        Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean   papers' table (strict <)
        UBody, Total                                          official pooled figures (<=)
        official: {Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, UBody, Total}  (<=)
        per_joint: {joint name: rate}                          16 joints, strict <
        thresholds: [...]                                      default 0, 0.01, ..., 0.5
        curves: {group: [rate at each threshold]}            groups above, same convention
                                                              as the top-level value
        count: N (people)
    """
    skel = resolve_skeleton(gt.skeleton, gt.num_joints)
    if skel.pck_norm != "head":
        raise HgxError(
            f"PCKh needs a head-normalised skeleton (MPII), the ground truth is {skel.name!r}: "
            f"use pck() / torso PCK for it"
        )
    if thresholds is None:
        thresholds = _default_thresholds(0.5, 50)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    dist, valid = normalized_distances(preds, gt)

    at = np.array([threshold], dtype=np.float64)
    h_lt, counts = _hits(dist, valid, at, strict=True)
    h_le, _ = _hits(dist, valid, at, strict=False)
    r_lt, r_le = _rates(h_lt, counts)[0], _rates(h_le, counts)[0]
    c_lt, _ = _hits(dist, valid, thresholds, strict=True)
    c_le, _ = _hits(dist, valid, thresholds, strict=False)
    cr_lt = _rates(c_lt, counts)

    eval14 = _idx(skel, MPII_EVAL_JOINTS)
    result: dict = {}
    curves: dict[str, list] = {}
    for group, names in PCKH_GROUPS.items():
        result[group] = _num(_mean_of(r_lt, _idx(skel, names)))
        curves[group] = _curve(_mean_of(cr_lt, _idx(skel, names)))
    result["Mean"] = _num(_mean_of(r_lt, eval14))
    curves["Mean"] = _curve(_mean_of(cr_lt, eval14))

    official: dict = {}
    for group, names in OFFICIAL_GROUPS.items():
        official[group] = _num(_mean_of(r_le, _idx(skel, names)))
    for group, names in OFFICIAL_POOLED.items():
        official[group] = _num(_pooled(h_le, counts, _idx(skel, names))[0])
        result[group] = official[group]
        curves[group] = _curve(_pooled(c_le, counts, _idx(skel, names)))

    result["official"] = official
    result["per_joint"] = {name: _num(r_lt[j]) for j, name in enumerate(skel.joints)}
    result["thresholds"] = [float(t) for t in thresholds]
    result["curves"] = curves
    result["count"] = int(gt.num_people)
    return result


def pck(
    preds: np.ndarray,
    gt: GroundTruth,
    threshold: float = 0.2,
    skeleton: str | Skeleton | None = None,
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> dict:
    """Torso-normalised PCK@``threshold`` (FLIC, LSP): correct when distance <= threshold x torso.

    Returns a JSON-able dict: the skeleton's group columns (FLIC: Elbow, Wrist, Shoulder, Hip,
    Eye, Nose; LSP: Ankle, Knee, Hip, Wrist, Elbow, Shoulder, Head) and Mean (pooled over every
    annotated joint), plus ``per_joint``, ``thresholds`` (default 0, 0.01, ...,
    ``threshold``), ``curves`` and ``count``.
    """
    skel = resolve_skeleton(skeleton if skeleton is not None else gt.skeleton, gt.num_joints)
    if skel.torso is None:
        raise HgxError(
            f"skeleton {skel.name!r} has no torso definition for torso PCK: use pckh() for MPII"
        )
    norm = gt.norm
    if skel.name != gt.skeleton:
        a, b = skel.torso
        norm = np.linalg.norm(gt.joints[:, a] - gt.joints[:, b], axis=-1)
        bad = gt.missing[:, a] | gt.missing[:, b] | ~(norm > 0)
        norm = np.where(bad, np.nan, norm)
    if thresholds is None:
        thresholds = _default_thresholds(threshold, 20)
    thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
    dist, valid = normalized_distances(preds, gt, norm)

    h, counts = _hits(dist, valid, np.array([threshold], dtype=np.float64), strict=False)
    rates = _rates(h, counts)[0]
    ch, _ = _hits(dist, valid, thresholds, strict=False)
    crates = _rates(ch, counts)

    result: dict = {}
    curves: dict[str, list] = {}
    for group, names in PCK_GROUPS.get(skel.name, {}).items():
        result[group] = _num(_mean_of(rates, _idx(skel, names)))
        curves[group] = _curve(_mean_of(crates, _idx(skel, names)))
    everything = list(range(skel.num_joints))
    if skel.name == "flic":  # pose-hg-train src/pypose/eval.py:81-87: the mean of the parts' rates
        result["Mean"] = _num(_mean_of(rates, everything))
        curves["Mean"] = _curve(_mean_of(crates, everything))
    else:  # eval_pck.m:63-66: pooled over every joint of every person
        result["Mean"] = _num(_pooled(h, counts, everything)[0])
        curves["Mean"] = _curve(_pooled(ch, counts, everything))
    result["per_joint"] = {name: _num(rates[j]) for j, name in enumerate(skel.joints)}
    result["thresholds"] = [float(t) for t in thresholds]
    result["curves"] = curves
    result["count"] = int(gt.num_people)
    return result
