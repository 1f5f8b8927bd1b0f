"""What PyraNet (hg-prm) and Hg-SAGAN (hg-atten) share: their residual module, which both
repositories ship as the same ``models/layers/Residual.lua``, and the initial weights
(``--init``) of every family.

Their residual differs from pose-hg-train's (``hgx.models.hourglass.Residual``) in its skip: when
the channel count changes, or when asked (``useConv``), the skip is BN-ReLU-conv1x1, where
pose-hg-train's is a bare conv1x1 (bearpaw/PyraNet/models/layers/Residual.lua:24-40,
idotc/Hg-SAGAN/models/layers/Residual.lua:24-40; umich-vl/pose-hg-train
src/models/layers/Residual.lua:20-27).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class SkipConv(nn.Module):
    """BN-ReLU-conv1x1: the skip of a Torch7 residual whose shape changes or that asks for a
    convolution (PyraNet/models/layers/Residual.lua:25-29, :35-38)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.relu(self.bn(x)))


def skip_layer(cin: int, cout: int, conv: bool = False) -> SkipConv | None:
    """``None`` (identity) when the shape is kept and no convolution is asked for
    (Residual.lua:32-33 and PRM.lua:86-87: stride is always 1 in these networks)."""
    return SkipConv(cin, cout) if conv or cin != cout else None


class Residual(nn.Module):
    """PyraNet's / Hg-SAGAN's ``Residual(numIn, numOut, stride=1, type, useConv)``:
    [BN-ReLU] conv1x1 (cin -> cout/2) -> BN-ReLU conv3x3 -> BN-ReLU conv1x1 (-> cout), plus the
    skip above (Residual.lua:7-21, :43-52). ``preact=False`` is its 'no_preact' type (:9-12)."""

    def __init__(self, cin: int, cout: int, conv_skip: bool = False, preact: bool = True):
        super().__init__()
        mid = cout // 2
        self.bn1 = nn.BatchNorm2d(cin) if preact else None
        self.conv1 = nn.Conv2d(cin, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, cout, 1)
        self.skip = skip_layer(cin, cout, conv_skip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.bn1 is None else F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (x if self.skip is None else self.skip(x))


# --------------------------------------------------------------------------------------------
# Initial weights (--init)

# alpha of the PyraNet paper's Eq. 9-15 for ReLU (0.5; 1 for Tanh and Sigmoid). Every
# convolution of these networks reads or feeds a ReLU, so one alpha serves them all.
MULTIBRANCH_ALPHA = 0.5


def initialise(model: nn.Module, scheme: str) -> nn.Module:
    """Give a freshly built model the initial weights of ``scheme`` (drawn from torch's global
    generator, seeded by the run: a resumed run never re-initialises).

    * ``pytorch``: PyTorch's defaults, untouched. Convolution weights and biases are
      U(+-1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)), which is the distribution of
      Torch7's ``SpatialConvolution:reset()`` (torch/nn SpatialConvolution.lua:34-54; cudnn's
      calls it); BatchNorm scale 1, shift 0.
    * ``torch7``: the same convolutions, and BatchNorm scale ~ U(0, 1), shift 0, as Torch7's
      ``BatchNormalization:reset()`` (torch/nn BatchNormalization.lua:65-74, cudnn.torch
      BatchNormalization.lua:32-41): how PyraNet, Hg-SAGAN and pose-hg-train started, none of
      which reads its ``-init`` option (PyraNet opts.lua:57, Hg-SAGAN opts.lua:64: no reader).
    * ``multibranch``: "Learning Feature Pyramids for Human Pose Estimation" (Yang et al., ICCV
      2017) Sec. 4.1 Eq. 15, the compromise of its forward (Eq. 10) and backward (Eq. 14)
      conditions: w ~ N(0, 1 / (alpha^2 (C_i n_i + C_o n_o))) with alpha = 0.5 for ReLU,
      n_i = k*k*cin and n_o = k*k*cout, C_i / C_o the numbers of input / output branches of the
      layer (a conv's ``branches_in`` / ``branches_out``, 1 unless a PRM sets them). With one
      branch each it is He et al.'s 2/n. (Read from a translation of the paper's Sec. 4.1 kept
      in a public repository: Eq. 7-15 with alpha 0.5 for ReLU. The stored copies of the paper
      itself hold only its first page.) Biases 0 (He et al.'s convention; the paper does not
      say); BatchNorm keeps scale 1, shift 0 (the paper does not say either). PyraNet's released
      code does not apply it: its initialiser (utils/weight-init.lua) is not in the repository
      (evalPyra.lua:20 has the require commented out); only the tag ``a.nBranchIn = C`` it
      would have read is there (PRM.lua:52-53).
    """
    if scheme == "pytorch":
        return model
    for m in model.modules():
        if scheme == "torch7" and isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.0, 1.0)
            nn.init.zeros_(m.bias)
        elif scheme == "multibranch" and isinstance(m, nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            n_i, n_o = k * m.in_channels, k * m.out_channels
            c_i, c_o = getattr(m, "branches_in", 1), getattr(m, "branches_out", 1)
            std = 1.0 / (MULTIBRANCH_ALPHA * math.sqrt(c_i * n_i + c_o * n_o))
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    if scheme not in ("torch7", "multibranch"):
        raise ValueError(f"unknown init scheme {scheme!r}")
    return model
