"""hg-atten: Hg-SAGAN's stacked hourglass with self-attention heads (Wang et al., IEEE Access
2019), as idotc/Hg-SAGAN releases it (models/hg-atten.lua, models/layers/SARM_B.lua; cited as
file:line of that repository at ad53812).

The generator is pose-hg-train's stacked hourglass (hg-atten.lua:12-40,59-88). It differs in
three places:

* its stem residuals come from Hg-SAGAN's Residual.lua, whose skip is BN-ReLU-conv1x1 when the
  width changes (hgx.models.layers);
* the heads of stacks 2..S are SARM_B(features -> joints) followed by a 1x1 conv joints ->
  joints, where stack 1 keeps a plain 1x1 conv (hg-atten.lua:72-78);
* SARM_A, the attention block of Hg-SAGAN's discriminator (models/layers/SARM_A.lua), is here
  for the adversarial training that builds on this file. No generator uses it.

Two things are generalised from the source:

* Hg-SAGAN reshapes with ``nn.View(opt.batchSize, -1, size*size)`` (SARM_B.lua:27,60), which is
  correct only when every batch has exactly -batchSize samples. Here every reshape is per
  sample, so any batch size works, in validation and prediction too.
* ``size`` is hard-coded as 64 (hg-atten.lua:76). Here it is the size of the map the block
  receives.

The attention products are computed in fp32 even under bf16 autocast. Their sums run over all
H*W positions with sigmoid weights in (0, 1), with no softmax to normalise them, so the
attention output grows with the map size (measured in tests/test_families.py).
"""
from __future__ import annotations

import contextlib
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from hgx.models.hourglass import StackedHourglass, original_stem
from hgx.models.layers import Residual


def _conv_block(cin: int, mid: int, cout: int) -> nn.ModuleDict:
    """BN-ReLU conv1x1 cin->mid, BN-ReLU conv3x3 mid->mid, BN-ReLU conv1x1 mid->cout."""
    return nn.ModuleDict(dict(
        bn1=nn.BatchNorm2d(cin), conv1=nn.Conv2d(cin, mid, 1),
        bn2=nn.BatchNorm2d(mid), conv2=nn.Conv2d(mid, mid, 3, padding=1),
        bn3=nn.BatchNorm2d(mid), conv3=nn.Conv2d(mid, cout, 1)))


def _run_block(m: nn.ModuleDict, x: torch.Tensor) -> torch.Tensor:
    x = m["conv1"](F.relu(m["bn1"](x)))
    x = m["conv2"](F.relu(m["bn2"](x)))
    return m["conv3"](F.relu(m["bn3"](x)))


def _fp32(device: torch.device):
    """No autocast inside: the attention products stay fp32 (the meta device, where FLOPs are
    counted, has no autocast)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


class SARMB(nn.Module):
    """``SARM_B(numIn, numOut, size)`` (SARM_B.lua:63-70) is the sum of three branches:

    * convBlock: BN-ReLU-conv1x1 cin -> cin/2, BN-ReLU-conv3x3, BN-ReLU-conv1x1 -> cout. Its
      width is numIn/2, not numOut/2 (SARM_B.lua:11-22).
    * skip: a bare conv1x1 cin -> cout, identity when cin == cout (:43-50).
    * attention: V·sigmoid(QᵀK). Q, K and V are three 1x1 convs cin -> cout (transLayer,
      :24-29); A = sigmoid(QᵀK) over all N = H*W positions (MM(true,false) then Sigmoid,
      :32-39); out = V A (MM(false,false), :52-61). There is no softmax, no scaling and no γ.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.block = _conv_block(cin, cin // 2, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.value = nn.Conv2d(cin, cout, 1)    # SARM_B.lua:57
        self.query = nn.Conv2d(cin, cout, 1)    # :35
        self.key = nn.Conv2d(cin, cout, 1)      # :36

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (conv(x).reshape(b, -1, h * w) for conv in (self.query, self.key, self.value))
        with _fp32(x.device):
            a = torch.sigmoid(torch.bmm(q.float().transpose(1, 2), k.float()))  # (B, N, N)
            out = torch.bmm(v.float(), a)                                       # (B, C, N)
        return out.reshape(b, -1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = _run_block(self.block, x) + (x if self.skip is None else self.skip(x))
        return out + self.attention(x)


class SARMA(nn.Module):
    """``SARM_A(numIn, numOut, size)`` of the discriminator (SARM_A.lua:67-74):
    out = R · sigmoid(FᵀF), where R = convBlock1(x) + skip(x) (:58-65) and F = convBlock2(x)
    (:52-56), both reshaped to (B, C, N). There are no Q/K/V projections (transLayer is only a
    View, :24-28). The convBlocks are Residual's, of width numOut/2 (:11-22). The skip is
    identity when cin == cout, else a bare conv1x1 (:42-49)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.residual = _conv_block(cin, cout // 2, cout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.features = _conv_block(cin, cout // 2, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        r = _run_block(self.residual, x) + (x if self.skip is None else self.skip(x))
        f = _run_block(self.features, x)
        with _fp32(x.device):
            f = f.float().reshape(b, -1, h * w)
            a = torch.sigmoid(torch.bmm(f.transpose(1, 2), f))
            out = torch.bmm(r.float().reshape(b, -1, h * w), a)
        return out.reshape(b, -1, h, w)


def atten_stem(features: int) -> nn.Sequential:
    """hg-atten.lua:52-57: conv7x7/2 (64), Res 64->128, pool, Res 128->128, Res 128->features,
    with Hg-SAGAN's Residual (BN-ReLU-conv skip): pose-hg-train's stem with that module."""
    return original_stem(features, residual=Residual)


class SelfAttentionHourglass(StackedHourglass):
    """hg-atten.lua:47-95. Same forward and output as StackedHourglass: (stacks, batch, joints,
    H/4, W/4). Its hourglass, its residuals after the hourglass (:67), ``lin`` (:69, :36-40) and
    the merges (:83-87) are pose-hg-train's. Its Residual(f, f) has an identity skip, so it is
    hgx's Residual."""

    def __init__(self, stacks: int = 2, features: int = 256, modules: int = 1,
                 joints: int = 16, depth: int = 4):
        super().__init__(stacks=stacks, features=features, modules=modules, joints=joints,
                         depth=depth)
        self.stem = atten_stem(features)
        for i in range(1, stacks):                       # hg-atten.lua:75-78, i > 1
            self.heads[i] = nn.Sequential(SARMB(features, joints), nn.Conv2d(joints, joints, 1))


MARKER = "stem.3.skip.bn.weight"  # Hg-SAGAN's stem skip: BN-ReLU-conv (hg's is a bare conv)


def infer_arch(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The SelfAttentionHourglass arguments of a state dict with hgx's keys (KeyError if one
    is missing)."""
    keys = set(sd)

    def count(fmt: str) -> int:
        n = 0
        while fmt.format(n) in keys:
            n += 1
        return n

    joints, features = sd["heads.0.weight"].shape[:2]
    depth = 0
    while f"hourglasses.0{'.low2' * depth}.up1.0.bn1.weight" in keys:
        depth += 1
    return dict(arch="hg-atten", stacks=count("lin.{}.0.weight"), features=int(features),
                modules=count("features.0.{}.conv1.weight"), joints=int(joints), depth=depth,
                mid=None, stem="original")
