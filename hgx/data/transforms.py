"""Crop transforms, heatmaps and heatmap decoding: pose-hg-train's recipe in one place.

Coordinate convention: positions are continuous, and pixel k spans [k, k+1) (its centre is
k + 0.5), in images, crops and heatmaps alike. A crop is described by an affine map from image
coordinates to crop coordinates; the same map moves the joints, so image and labels always agree.
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def crop_matrix(center, scale: float, rot: float, res: int) -> np.ndarray:
    """2x3 affine map, image -> crop of ``res`` px, of a box of side 200*scale around ``center``.

    ``rot`` (degrees) rotates the crop's content counter-clockwise as seen on screen.
    """
    h = 200.0 * scale
    k = res / h
    a = math.radians(rot)
    cos, sin = math.cos(a) * k, math.sin(a) * k
    cx, cy = float(center[0]), float(center[1])
    # x' = k*R(-a)(x - c) + res/2 with y pointing down: a positive angle turns content CCW.
    return np.array([[cos, sin, res / 2 - cos * cx - sin * cy],
                     [-sin, cos, res / 2 + sin * cx - cos * cy]], dtype=np.float64)


def invert(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m.astype(np.float64))


def apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine map to points (..., 2)."""
    pts = np.asarray(pts, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def warp(image: np.ndarray, m: np.ndarray, res: int) -> np.ndarray:
    """Crop ``image`` through ``m`` (continuous coords) into a res x res image, black border."""
    # cv2 indexes pixel centres: convert our corner-based map to centre-based indices.
    mc = m.copy()
    mc[:, 2] += m[:, :2].sum(axis=1) * 0.5 - 0.5
    return cv2.warpAffine(image, mc, (res, res), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def flip_joints(joints: np.ndarray, width: int, flip_index: list[int]) -> np.ndarray:
    """Mirror joint coordinates in a crop of ``width`` px and swap left/right joints."""
    out = joints[flip_index].copy()
    out[:, 0] = width - out[:, 0]
    return out


# -- heatmaps: numpy faces of the torch implementations in hgx.data.labels --------------------
def gaussian_window(sigma: float) -> np.ndarray:
    """pose-hg-train's kernel: for sigma 1.75 a 7x7 window, peak 1."""
    from hgx.data.labels import gaussian_1d

    g = gaussian_1d(sigma)
    return np.outer(g, g)


def draw_heatmaps(joints: np.ndarray, present, res: int, sigma: float = 1.75) -> np.ndarray:
    """One map per joint; a Gaussian centred on the integer-truncated joint, drawn only in its
    window. Missing joints and joints whose window lies outside the map give empty maps."""
    import torch

    from hgx.data import labels

    return labels.draw(torch.as_tensor(np.asarray(joints, np.float32)),
                       torch.as_tensor(np.asarray(present, bool)), res, sigma).numpy()


def decode(heatmaps) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (..., J, H, W) -> coordinates (..., J, 2) in heatmap pixels, and peak scores
    (``labels.decode``: argmax, quarter-pixel shift toward the higher neighbour, pixel centre)."""
    import torch

    from hgx.data import labels

    coords, scores = labels.decode(torch.as_tensor(np.asarray(heatmaps, np.float32)))
    return coords.numpy().astype(np.float64), scores.numpy()
