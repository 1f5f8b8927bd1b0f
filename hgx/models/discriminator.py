"""Hg-SAGAN's discriminator (Wang et al., IEEE Access 2019; idotc/Hg-SAGAN, Torch7): a BEGAN-style
autoencoder of heatmaps. It reads the image at heatmap resolution beside a set of heatmaps and
reconstructs the heatmaps; its reconstruction error is low for heatmaps that look like the
ground truth (models/discriminator.lua).

Reads top to bottom: one hourglass with SARM_A (``hgx.models.attention.SARMA``) on its upper
branches, then the discriminator; its residuals are Hg-SAGAN's (``hgx.models.layers``: a
channel-changing skip is BN-ReLU-1x1). With 16 joints and one module per step it has 4,286,480
trainable parameters (a test pins it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hgx.models.attention import SARMA
from hgx.models.layers import Residual


def residuals(n: int, cin: int, cout: int) -> nn.Sequential:
    """``n`` of Hg-SAGAN's residuals in a row (its discriminator's ``opt.nModules``)."""
    return nn.Sequential(*[Residual(cin if i == 0 else cout, cout) for i in range(n)])


class AttentionHourglass(nn.Module):
    """discriminator.lua:7-40: the upper (skip) branch of every level is SARM_A, the lower
    branches plain residuals, ``modules`` of each (opt.nModules)."""

    def __init__(self, depth: int, features: int, modules: int = 1):
        super().__init__()
        self.up1 = nn.Sequential(*[SARMA(features, features) for _ in range(modules)])
        self.low1 = residuals(modules, features, features)
        self.low2 = AttentionHourglass(depth - 1, features, modules) if depth > 1 else \
            residuals(modules, features, features)
        self.low3 = residuals(modules, features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))
        return self.up1(x) + F.interpolate(low, scale_factor=2, mode="nearest")


class Discriminator(nn.Module):
    """Hg-SAGAN's D (discriminator.lua:42-75): input the image at heatmap resolution (3
    channels) beside ``joints`` heatmaps, one hourglass of ``depth`` levels with SARM_A on its
    upper branches, output ``joints`` reconstructed heatmaps (no activation).

    stem: 3x3 conv (3 + J -> 64, stride 1) -> BN -> ReLU -> Res 64->128 -> Res 128->128 ->
    Res 128->256 (no pooling, lines 53-57); tail: Res 256->256 -> 1x1 -> BN -> ReLU -> 1x1 to J
    (lines 66-71)."""

    def __init__(self, joints: int = 16, features: int = 256, depth: int = 4, modules: int = 1):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3 + joints, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            Residual(64, 128), Residual(128, 128), Residual(128, features))
        self.hourglass = AttentionHourglass(depth, features, modules)
        self.tail = nn.Sequential(
            residuals(modules, features, features), nn.Conv2d(features, features, 1),
            nn.BatchNorm2d(features), nn.ReLU(inplace=True), nn.Conv2d(features, joints, 1))

    def forward(self, image_small: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        """Reconstructed heatmaps of ``heatmaps`` (B, J, R, R) seen beside ``image_small``
        (B, 3, R, R); the image channels come first (Hg-SAGAN train.lua:126, 144)."""
        x = torch.cat([image_small.to(heatmaps.dtype), heatmaps], dim=1)
        return self.tail(self.hourglass(self.stem(x)))
