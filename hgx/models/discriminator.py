"""Hg-SAGAN's discriminator (Wang et al., IEEE Access 2019; idotc/Hg-SAGAN, Torch7): a BEGAN-style
autoencoder of heatmaps. It reads the image at heatmap resolution beside a set of heatmaps and
reconstructs the heatmaps; its reconstruction error is low for heatmaps that look like the
ground truth (models/discriminator.lua).

Reads top to bottom: the SARM_A block (attention on the hourglass's upper branches), one
hourglass, then the discriminator. With 16 joints and one module per step it has 4,286,480
trainable parameters (a test pins it).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hgx.models import hourglass


class Residual(hourglass.Residual):
    """Hg-SAGAN's residual (models/layers/Residual.lua:7-52): pose-hg-train's bottleneck, but
    a channel-changing skip is BN-ReLU-1x1 (lines 32-39), not a bare 1x1 (SARM_A's own skip
    is bare, SARM_A.lua:42-49)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout)
        if cin != cout:
            self.skip = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=False),
                                      nn.Conv2d(cin, cout, 1))


def residuals(n: int, cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(*[Residual(cin if i == 0 else cout, cout) for i in range(n)])


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """BN-ReLU-1x1(cin -> cout/2) -> BN-ReLU-3x3 -> BN-ReLU-1x1(-> cout), biases on: the
    residual's convolutional branch (idotc/Hg-SAGAN models/layers/SARM_A.lua:11-22)."""
    mid = cout // 2
    return nn.Sequential(
        nn.BatchNorm2d(cin), nn.ReLU(inplace=False), nn.Conv2d(cin, mid, 1),
        nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, mid, 3, padding=1),
        nn.BatchNorm2d(mid), nn.ReLU(inplace=True), nn.Conv2d(mid, cout, 1))


class SARMA(nn.Module):
    """SARM_A (idotc/Hg-SAGAN models/layers/SARM_A.lua:67-74): a residual whose output is
    mixed over all positions by a self-attention map of a second branch,

        R = block1(x) + skip(x),  F = block2(x),  out = R · sigmoid(Fᵀ F)

    over the H·W positions: Q = K = F, no value projection, no softmax, no gamma and nothing
    added back (the attention multiplies the residual, lines 52-74). The Lua code views with a
    hard-coded batch size (lines 26, 73); here every sample is reshaped on its own. The two
    products run in fp32 under autocast: the unnormalised sigmoid weights sum over up to 4096
    positions."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = conv_block(cin, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None   # SARM_A.lua:42-49
        self.attend = conv_block(cin, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        r = self.block(x) + (x if self.skip is None else self.skip(x))
        f = self.attend(x)
        with torch.autocast(x.device.type, enabled=False):
            r = r.float().reshape(b, -1, h * w)
            f = f.float().reshape(b, -1, h * w)
            a = torch.sigmoid(torch.bmm(f.transpose(1, 2), f))   # (B, N, N): σ(f_i · f_j)
            out = torch.bmm(r, a)                                 # out_j = Σ_i r_i σ(f_i · f_j)
        return out.reshape(b, -1, h, w)


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
