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


# -- heatmaps -----------------------------------------------------------------------------------
def gaussian_window(sigma: float) -> np.ndarray:
    """pose-hg-train's kernel: for sigma 1.75 a 7x7 window, peak 1."""
    half = max(1, int(math.ceil(3 * sigma / 1.75)))
    x = np.arange(-half, half + 1, dtype=np.float32)
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return np.outer(g, g)


def draw_heatmaps(joints: np.ndarray, present: np.ndarray, res: int,
                  sigma: float = 1.75) -> np.ndarray:
    """One map per joint; a Gaussian centred on the integer-truncated joint, drawn only in its
    window. Missing joints and joints whose window lies outside the map give empty maps."""
    hm = np.zeros((len(joints), res, res), dtype=np.float32)
    win = gaussian_window(sigma)
    half = win.shape[0] // 2
    for j, ((x, y), ok) in enumerate(zip(joints, present)):
        if not ok or not (np.isfinite(x) and np.isfinite(y)):
            continue
        px, py = int(math.floor(x)), int(math.floor(y))
        x0, y0, x1, y1 = px - half, py - half, px + half + 1, py + half + 1
        if x0 >= res or y0 >= res or x1 <= 0 or y1 <= 0:
            continue
        cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, res), min(y1, res)
        hm[j, cy0:cy1, cx0:cx1] = win[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    return hm


def decode(heatmaps) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (..., J, H, W) -> coordinates (..., J, 2) in heatmap pixels, and peak scores.

    Argmax, then a quarter-pixel shift toward the higher neighbour (pose-hg-train), read at the
    pixel centre so that decoding the training heatmaps returns the joint without bias.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    *lead, h, w = hm.shape
    flat = hm.reshape(-1, h * w)
    idx = flat.argmax(axis=1)
    scores = flat[np.arange(len(flat)), idx]
    ys, xs = np.divmod(idx, w)
    maps = hm.reshape(-1, h, w)
    n = np.arange(len(flat))
    inner_x = (xs > 0) & (xs < w - 1)
    inner_y = (ys > 0) & (ys < h - 1)
    dx = np.where(inner_x, maps[n, ys, np.clip(xs + 1, 0, w - 1)] -
                  maps[n, ys, np.clip(xs - 1, 0, w - 1)], 0.0)
    dy = np.where(inner_y, maps[n, np.clip(ys + 1, 0, h - 1), xs] -
                  maps[n, np.clip(ys - 1, 0, h - 1), xs], 0.0)
    coords = np.stack([xs + 0.5 + 0.25 * np.sign(dx), ys + 0.5 + 0.25 * np.sign(dy)], axis=1)
    return coords.reshape(*lead, 2), scores.reshape(*lead)


def heatmap_accuracy(output, target, joints: tuple[int, ...], threshold: float = 0.5) -> float:
    """pose-hg-train's training metric: argmax distance < threshold * res/10 on the given joints.

    Joints without a peak in the target are skipped; the result averages the per-joint rates.
    """
    out = np.asarray(output, dtype=np.float32)
    tgt = np.asarray(target, dtype=np.float32)
    res = out.shape[-1]
    p, _ = decode(out)
    t, tscore = decode(tgt)
    dist = np.linalg.norm(p - t, axis=-1) / (res / 10.0)
    rates = []
    for j in joints:
        valid = tscore[:, j] > 0
        if valid.any():
            rates.append(float((dist[valid, j] < threshold).mean()))
    return float(np.mean(rates)) if rates else float("nan")
