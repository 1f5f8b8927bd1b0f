"""Heatmap labels in torch, on whatever device the batch is on: drawing the targets, reading
joints back off heatmaps, and pose-hg-train's training accuracy.

These are the only implementations: ``transforms.draw_heatmaps`` / ``transforms.decode`` are
numpy wrappers around them. A loader worker sends joints, not heatmaps (``hgx.data.batch``);
the consumer draws the maps here, on the GPU when there is one.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def gaussian_1d(sigma: float) -> np.ndarray:
    """One axis of pose-hg-train's kernel: for sigma 1.75 a 7-wide window, peak 1 (float32).
    The 2-D window is the outer product of two of these."""
    half = max(1, int(math.ceil(3 * sigma / 1.75)))
    x = np.arange(-half, half + 1, dtype=np.float32)
    return np.exp(-(x ** 2) / (2 * sigma ** 2))


@lru_cache(maxsize=None)
def _on_device(values: tuple, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A small constant tensor, copied to ``device`` once: a copy from host memory every batch
    would make the host wait for the GPU's queue."""
    return torch.tensor(values, dtype=dtype, device=device)


def draw(joints: torch.Tensor, present: torch.Tensor, res: int,
         sigma: float = 1.75) -> torch.Tensor:
    """Heatmaps (..., J, res, res) float32 for joints (..., J, 2) in heatmap pixels.

    A Gaussian centred on the floor of each joint, drawn only in its window; missing, non-finite
    and far-outside joints give empty maps. Built as the outer product of one masked row and one
    masked column per joint, so nothing outside the windows is ever computed per pixel.
    """
    g = _on_device(tuple(gaussian_1d(sigma).tolist()), torch.float32, joints.device)
    half = (len(g) - 1) // 2
    joints = joints.to(torch.float32)
    ok = present.to(torch.bool) & torch.isfinite(joints).all(-1)
    far = float(4 * res + 4 * half)
    xy = torch.where(ok[..., None], joints, torch.full_like(joints, -far)).clamp(-far, far)
    p = torch.floor(xy).to(torch.long)                                  # (..., J, 2)
    d = torch.arange(res, device=joints.device) - p[..., None]          # (..., J, 2, res)
    inside = d.abs() <= half
    v = torch.where(inside, g[(d + half).clamp(0, 2 * half)], torch.zeros((), device=g.device))
    return v[..., 1, :, None] * v[..., 0, None, :]                      # y rows times x columns


def decode(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Heatmaps (..., J, H, W) -> coordinates (..., J, 2) in heatmap pixels, and peak scores.

    Argmax, then a quarter-pixel shift toward the higher neighbour (pose-hg-train), read at the
    pixel centre so that decoding the training heatmaps returns the joint without bias.
    """
    hm = heatmaps.to(torch.float32)
    *lead, h, w = hm.shape
    maps = hm.reshape(-1, h, w)
    flat = maps.reshape(-1, h * w)
    scores, idx = flat.max(dim=1)
    ys, xs = torch.div(idx, w, rounding_mode="floor"), idx % w
    n = torch.arange(len(flat), device=hm.device)

    def at(y, x):
        return maps[n, y.clamp(0, h - 1), x.clamp(0, w - 1)]

    zero = torch.zeros((), device=hm.device)
    dx = torch.where((xs > 0) & (xs < w - 1), at(ys, xs + 1) - at(ys, xs - 1), zero)
    dy = torch.where((ys > 0) & (ys < h - 1), at(ys + 1, xs) - at(ys - 1, xs), zero)
    coords = torch.stack([xs + 0.5 + 0.25 * torch.sign(dx), ys + 0.5 + 0.25 * torch.sign(dy)],
                         dim=1)
    return coords.reshape(*lead, 2), scores.reshape(*lead)


def argmax_xy(heatmaps: torch.Tensor) -> torch.Tensor:
    """Integer argmax (x, y) of each map (..., H, W) -> (..., 2), 0-based; a map whose maximum
    is not above 0 gives (0, 0), as pose-hg-train's getPreds (src/util/eval.lua:30-39, which is
    1-based and masks with ``max:gt(0)``)."""
    *lead, h, w = heatmaps.shape
    peak, idx = heatmaps.reshape(*lead, h * w).max(dim=-1)
    xy = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1)
    return torch.where((peak > 0)[..., None], xy, torch.zeros_like(xy))


def heatmap_accuracy(output: torch.Tensor, target: torch.Tensor, joints: tuple[int, ...],
                     threshold: float = 0.5) -> torch.Tensor:
    """pose-hg-train's training metric on one batch (``heatmapAccuracy``, src/util/eval.lua:
    51-77, called by src/util/pose.lua:109-115 on the last stack), number for number:

    * integer argmax of the output and of the target map (no sub-pixel shift), eval.lua:54-55;
    * a target whose argmax lies in the first row or column is not counted (eval.lua:20 tests
      ``> 1`` on 1-based coordinates; an empty target map gives (1, 1), so it drops out too);
    * distance in units of outputRes / 10, hit when ``<=`` threshold (eval.lua:45, 56);
    * per joint of ``joints`` (accIdxs) the hit rate over the batch, -1 when none counted;
      the result is the mean over the joints that have a rate (eval.lua:69-74).

    A 0-d float64 tensor on the batch's device, NaN when no joint is counted (where Lua's
    0/0 would poison the epoch's mean, hgx leaves the batch out of it). No host sync."""
    idx = _on_device(tuple(joints), torch.long, output.device)
    res = output.shape[-1]
    p = argmax_xy(output[:, idx].float()).to(torch.float64)
    t = argmax_xy(target[:, idx].float())
    counted = (t[..., 0] >= 1) & (t[..., 1] >= 1)
    dist = torch.linalg.vector_norm(p - t.to(torch.float64), dim=-1) / (res / 10.0)
    hits = ((dist <= threshold) & counted).sum(0).to(torch.float64)
    n = counted.sum(0)
    have = n > 0
    rates = hits / n.clamp(min=1)
    return (rates * have).sum() / have.sum()
