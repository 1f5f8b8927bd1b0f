"""The stacked hourglass network as pose-hg-train builds it (Newell et al., ECCV 2016).

Reads top to bottom: the residual block, one hourglass, the stem, then the stacked network.
All convolutions carry a bias, as in the Torch7 original. With 8 stacks, 256 features and one
residual module per step it has 25,434,112 trainable parameters.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-conv1x1 -> BN-ReLU-conv3x3 -> BN-ReLU-conv1x1, plus skip.

    ``mid`` is the bottleneck width (pose-hg-train: ``cout // 2``): conv1's filters, and conv2's
    unless ``mid2`` says otherwise (a pruned block, ``hgx prune``). The skip is the identity
    when the channel count is unchanged, a 1x1 convolution otherwise.
    """

    def __init__(self, cin: int, cout: int, mid: int | None = None, mid2: int | None = None):
        super().__init__()
        mid = mid or cout // 2
        mid2 = mid2 or mid
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid2, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid2)
        self.conv3 = nn.Conv2d(mid2, cout, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    @property
    def widths(self) -> tuple[int, int]:
        """(conv1 filters, conv2 filters): the inner widths ``hgx prune`` changes."""
        return self.conv1.out_channels, self.conv2.out_channels

    def set_widths(self, mid: int, mid2: int) -> None:
        """New (freshly initialised) inner layers of these widths; bn1, conv3's outputs and the
        skip, which touch the trunk, stay as they are."""
        cout = self.conv3.out_channels
        self.conv1 = nn.Conv2d(self.conv1.in_channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid2, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid2)
        self.conv3 = nn.Conv2d(mid2, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (x if self.skip is None else self.skip(x))


def residuals(n: int, cin: int, cout: int, mid: int | None = None) -> nn.Sequential:
    """``n`` residual modules in a row (pose-hg-train's ``nModules``)."""
    return nn.Sequential(*[Residual(cin if i == 0 else cout, cout, mid) for i in range(n)])


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels: each level halves the resolution and adds a skip branch."""

    def __init__(self, depth: int, features: int, modules: int = 1, mid: int | None = None):
        super().__init__()
        self.up1 = residuals(modules, features, features, mid)
        self.low1 = residuals(modules, features, features, mid)
        if depth > 1:
            self.low2 = Hourglass(depth - 1, features, modules, mid)
        else:
            self.low2 = residuals(modules, features, features, mid)
        self.low3 = residuals(modules, features, features, mid)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))
        return up1 + F.interpolate(low, scale_factor=2, mode="nearest")


def original_stem(features: int, residual: type[nn.Module] | None = None) -> nn.Sequential:
    """pose-hg-train: conv7x7/2 (64) -> Res 64->128 -> pool -> Res 128->128 -> Res 128->features,
    with ``residual`` as the residual module (default pose-hg-train's ``Residual``)."""
    res = residual or Residual
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, stride=2, padding=3),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        res(64, 128),
        nn.MaxPool2d(2, 2),
        res(128, 128),
        res(128, features),
    )


def bearpaw_stem(features: int) -> nn.Sequential:
    """pytorch-pose's stem: conv7x7/2 (f/4) -> Res f/4->f/2 -> pool -> Res f/2->f -> Res f->f."""
    q, h = features // 4, features // 2
    return nn.Sequential(
        nn.Conv2d(3, q, 7, stride=2, padding=3),
        nn.BatchNorm2d(q),
        nn.ReLU(inplace=True),
        Residual(q, h),
        nn.MaxPool2d(2, 2),
        Residual(h, features),
        Residual(features, features),
    )


STEMS = {"original": original_stem, "bearpaw": bearpaw_stem}


class StackedHourglass(nn.Module):
    """``stacks`` hourglasses; each predicts heatmaps that are fed back into the next one.

    ``forward`` returns a tensor (stacks, batch, joints, H/4, W/4): every stack's heatmaps, for
    intermediate supervision. The last one is the prediction.

    ``block_widths``: the inner widths of every residual block, two per block (conv1's and
    conv2's filters) in :func:`block_names` order, as ``hgx prune`` writes them into the
    ``block_widths`` option; None or empty = every block at its unpruned width.
    """

    def __init__(self, stacks: int = 8, features: int = 256, modules: int = 1,
                 joints: int = 16, depth: int = 4, mid: int | None = None,
                 stem: str = "original", block_widths: Sequence[int] | None = None):
        super().__init__()
        self.stacks = stacks
        self.stem = STEMS[stem](features)
        self.hourglasses = nn.ModuleList(
            Hourglass(depth, features, modules, mid) for _ in range(stacks))
        self.features = nn.ModuleList(residuals(modules, features, features, mid)
                                      for _ in range(stacks))
        self.lin = nn.ModuleList(
            nn.Sequential(nn.Conv2d(features, features, 1), nn.BatchNorm2d(features),
                          nn.ReLU(inplace=True))
            for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(features, joints, 1) for _ in range(stacks))
        # Intermediate supervision: features and heatmaps are mapped back and added to the input.
        self.merge_features = nn.ModuleList(nn.Conv2d(features, features, 1)
                                            for _ in range(stacks - 1))
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(joints, features, 1)
                                            for _ in range(stacks - 1))
        if block_widths:
            blocks = [m for m in self.modules() if isinstance(m, Residual)]
            if len(block_widths) != 2 * len(blocks):
                raise ValueError(f"block_widths has {len(block_widths)} values; this network "
                                 f"has {len(blocks)} residual blocks, so it needs "
                                 f"{2 * len(blocks)} (two per block)")
            for block, w1, w2 in zip(blocks, block_widths[::2], block_widths[1::2]):
                if block.widths != (w1, w2):
                    block.set_widths(int(w1), int(w2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        outputs = []
        for i in range(self.stacks):
            y = self.lin[i](self.features[i](self.hourglasses[i](x)))
            heatmaps = self.heads[i](y)
            outputs.append(heatmaps)
            if i < self.stacks - 1:
                x = x + self.merge_features[i](y) + self.merge_heatmaps[i](heatmaps)
        return torch.stack(outputs)


def block_names(stacks: int, depth: int, modules: int = 1) -> list[tuple[str, str]]:
    """Every residual block of ``StackedHourglass(stacks, depth=depth, modules=modules)`` as
    (module name, group), in the order of ``model.modules()`` (the order of ``block_widths``).

    Groups (what ``hgx prune --levels`` selects): ``stem`` (its three blocks), ``1`` ..
    ``depth`` (hourglass level k of every stack: the up1/low1/low3 blocks of the k-th nested
    hourglass, 1 the outermost; the bottom low2 blocks belong to level ``depth``), and
    ``heads`` (each stack's residual block after its hourglass, before the 1x1 heads)."""
    out = [(f"stem.{i}", "stem") for i in (3, 5, 6)]

    def hourglass(prefix: str, level: int) -> None:
        for part in ("up1", "low1"):
            out.extend((f"{prefix}.{part}.{i}", str(level)) for i in range(modules))
        if level < depth:
            hourglass(f"{prefix}.low2", level + 1)
        else:
            out.extend((f"{prefix}.low2.{i}", str(level)) for i in range(modules))
        out.extend((f"{prefix}.low3.{i}", str(level)) for i in range(modules))

    for s in range(stacks):
        hourglass(f"hourglasses.{s}", 1)
    out.extend((f"features.{s}.{i}", "heads") for s in range(stacks) for i in range(modules))
    return out


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
