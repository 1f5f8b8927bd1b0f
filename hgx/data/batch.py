"""What leaves a loader worker, and what the consumer makes of it.

A worker's sample is compact: the crop as uint8 RGB in HWC order, the joints in heatmap pixels
with their presence flags, the colour factors, and the crop's bookkeeping (``meta``). That is
197 KB per sample at 256 px, where the float CHW image plus drawn heatmaps would be 1,049 KB:
on 2 cores the bytes alone cost a fifth of the loader's rate (``benchmarks/bench_loader.py``).

The consumer (``to_device``) moves the batch to its device and there makes the network's input,
float NCHW in [0, 1] times the colour factors (channels_last in memory for free, since the
crop is HWC), and draws the target heatmaps (``labels.draw``).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from hgx.data import labels


class Sample(NamedTuple):
    crop: np.ndarray      # (H, W, 3) uint8 RGB
    joints: np.ndarray    # (J, 2) float32, heatmap px
    present: np.ndarray   # (J,) bool
    colour: np.ndarray    # (3,) float32 colour factors (ones without augmentation)
    meta: dict            # row, hm_to_image (2x3 heatmap px -> image px), flip


class Batch(NamedTuple):
    crops: torch.Tensor    # (B, H, W, 3) uint8
    joints: torch.Tensor   # (B, J, 2) float32
    present: torch.Tensor  # (B, J) bool
    colour: torch.Tensor   # (B, 3) float32
    meta: dict             # numpy: row (B,), hm_to_image (B, 2, 3), flip (B,), image_size (B, 2)


def _stack(arrays, dtype) -> torch.Tensor:
    """Stack into a new tensor; inside a loader worker, straight into shared memory, which is
    where the batch travels to the main process (no second copy on the way)."""
    out = torch.empty((len(arrays), *arrays[0].shape), dtype=dtype)
    if torch.utils.data.get_worker_info() is not None:
        out.share_memory_()
    np.stack(arrays, out=out.numpy())
    return out


def collate(samples: list[Sample]) -> Batch:
    meta = {"row": np.array([s.meta["row"] for s in samples]),
            "hm_to_image": np.stack([s.meta["hm_to_image"] for s in samples]),
            "flip": np.array([s.meta["flip"] for s in samples]),
            "image_size": np.stack([s.meta.get("image_size", np.full(2, np.nan))
                                    for s in samples])}
    return Batch(_stack([s.crop for s in samples], torch.uint8),
                 _stack([s.joints for s in samples], torch.float32),
                 _stack([s.present for s in samples], torch.bool),
                 _stack([s.colour for s in samples], torch.float32), meta)


def input_images(crops: torch.Tensor, colour: torch.Tensor,
                 channels_last: bool = True) -> torch.Tensor:
    """uint8 crops (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1], times the colour factors.
    The result is channels_last in memory (it is the HWC data) unless asked otherwise."""
    x = crops.to(torch.float32).mul_(1.0 / 255.0)  # (B, H, W, 3)
    # The colour factors as one contiguous (B, 1, W, 3) row, broadcast over H: a (B, 1, 1, 3)
    # factor (channel innermost) runs 4x slower on the CPU. The same products, bit for bit.
    b, _, w, c = x.shape
    row = colour.to(x.device, torch.float32)[:, None, None, :].expand(b, 1, w, c).contiguous()
    x = x.mul_(row).clamp_(0.0, 1.0).permute(0, 3, 1, 2)
    return x if channels_last else x.contiguous()


def to_device(batch: Batch, device: torch.device, channels_last: bool, output_res: int,
              sigma: float, heatmaps: bool = True):
    """(images, heatmaps or None) on ``device``, made there from the compact batch."""
    crops = batch.crops.to(device, non_blocking=True)
    images = input_images(crops, batch.colour.to(device, non_blocking=True), channels_last)
    if not heatmaps:
        return images, None
    return images, labels.draw(batch.joints.to(device, non_blocking=True),
                               batch.present.to(device, non_blocking=True), output_res, sigma)


def finished(sample: Sample, output_res: int, sigma: float):
    """One sample as the network sees it, in numpy: (image (3, H, W) float32, heatmaps
    (J, res, res) float32, meta). For viewers and tests; training works on batches."""
    batch = collate([sample])
    images, maps = to_device(batch, torch.device("cpu"), False, output_res, sigma)
    return images[0].numpy(), maps[0].numpy(), sample.meta
