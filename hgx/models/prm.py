"""hg-prm: PyraNet's stacked hourglass of pyramid residual modules (Yang et al., ICCV 2017), as
bearpaw/PyraNet releases it (models/hg-prm.lua, models/layers/PRM.lua; cited as file:line of
that repository at 56d4f47).

Reads top to bottom: the random pooling regions of the fractional max-pools, the PRM, one
hourglass, the network, and how a state dict of this family is recognised.

Conventions reproduced, each cited where it is coded below:

* The PRM is PRM-B: one 1x1 convolution shared by the C pyramid levels, whose outputs are
  summed (PRM.lua:26-61).
* Level c pools by fractional max-pooling at ratio 2^(-c/C), c = 1..C, then applies a 3x3
  convolution and bilinear upsampling back (PRM.lua:28-34).
* PRMs sit by hourglass level as the code places them: up1 at levels n >= 2, low1/low2/low3
  at n >= 3 (hg-prm.lua:11-12). At the source's 256 px input and depth 4 these are exactly
  the modules whose maps are >= 16x16; other sizes keep the rule by level.
* low3 always has a convolution skip (hg-prm.lua:30).
* The head is BN-ReLU, then conv-BN-ReLU, then a 1x1 conv to the heatmaps, with no residual
  after the hourglass (hg-prm.lua:69-73).

Generalised: the upsampling target is the size of the map the PRM receives, where PyraNet
hard-codes its build-time ``-inputRes`` (PRM.lua:34 with hg-prm.lua:50,57), so any input size
that check_resolution accepts works. At 256 px the two are the same.

Fractional max-pooling draws random pooling regions on every forward, in evaluation too
(torch/nn SpatialFractionalMaxPooling.lua:19-29,65-79; PyraNet never fixes them). Here:

* In training the regions come from one generator per device type (``REGIONS``). It is seeded
  from the run's --seed, and its state is saved in every snapshot and restored by ``continue``
  with the other RNG states (hgx.engine.state). A resumed run therefore draws exactly the
  regions of an uninterrupted one. Nothing else reads this generator: not the data loader,
  which draws from torch's global generator whenever it starts an epoch, nor validation.
* In evaluation (``model.eval()``) every PRM uses fixed regions: one draw per pyramid level
  and channel from a generator with a constant seed, the same for every sample. Predictions
  are then deterministic and do not depend on the batch. This is a departure from the source,
  made so that evaluation is repeatable.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hgx.models.layers import Residual, skip_layer


# --------------------------------------------------------------------------------------------
# The random pooling regions


class PoolingRegions:
    """The generator(s) of the training-time pooling regions of every PRM in this process,
    one per device type, created on first use. ``seed`` starts them afresh; ``state`` and
    ``set_state`` hold them in tensors (snapshot-safe: ``torch.load(weights_only=True)``).
    A saved state is applied when the generator of its device type is first used."""

    TAG = 0x464D50  # "FMP": keeps this stream apart from torch's global one of the same seed

    def __init__(self):
        self._seed = 0
        self._generators: dict[str, torch.Generator] = {}
        self._pending: dict[str, torch.Tensor] = {}

    def seed(self, seed: int) -> None:
        self._seed = int(np.random.SeedSequence([int(seed), self.TAG]).generate_state(
            1, np.uint64)[0])
        self._generators.clear()
        self._pending.clear()

    def draw(self, n: int, channels: int, device: torch.device) -> torch.Tensor:
        """(n, channels, 2) uniforms in [0, 1): torch's ``_random_samples`` (width, height)."""
        g = self._generators.get(device.type)
        if g is None:
            g = torch.Generator(device=device)
            g.manual_seed(self._seed)
            pending = self._pending.pop(device.type, None)
            if pending is not None:
                g.set_state(pending)
            self._generators[device.type] = g
        return torch.rand(n, channels, 2, generator=g, device=device)

    def state(self) -> dict[str, torch.Tensor]:
        out = {k: v.clone() for k, v in self._pending.items()}
        out.update({k: g.get_state() for k, g in self._generators.items()})
        return out

    def set_state(self, state: Mapping[str, torch.Tensor] | None) -> None:
        self._generators.clear()
        self._pending = {k: v.clone() for k, v in (state or {}).items()}


REGIONS = PoolingRegions()
EVAL_SEED = 0x50524D  # "PRM": the fixed evaluation regions


def pyramid_ratios(cardinality: int) -> list[float]:
    """r_c = 1 / (2^(1/C))^c for c = 1..C, computed as PRM.lua:28-30 does: 2^(-1/C) ... 0.5."""
    sc = 2 ** (1 / cardinality)
    return [1 / sc ** c for c in range(1, cardinality + 1)]


# --------------------------------------------------------------------------------------------
# The pyramid residual module


class PRM(nn.Module):
    """PyraNet's ``Residual(numIn, numOut, 1, type, useConv, inputRes, baseWidth, cardinality)``
    (PRM.lua:97-108). It has two branches, summed, then BN-ReLU-conv1x1 to ``cout``, plus the skip:

    * main: [BN-ReLU] conv1x1 cin -> cout/2, BN-ReLU, conv3x3 (PRM.lua:13-23);
    * pyramid: its own [BN-ReLU] (PRM.lua:48-51), conv1x1 cin -> D with D = floor(cout /
      base_width) (:44, :54), BN-ReLU (:55-56), the C levels summed (:26-41, :57), BN-ReLU
      (:58-59), conv1x1 D -> cout/2 (:52-53, :61).

    The sum is followed by BN-ReLU and conv1x1 cout/2 -> cout (:66-74); the skip is as
    Residual's (:78-94). ``preact=False`` is 'no_preact' and drops both input BN-ReLUs (:14,
    :48). Every convolution has a bias (cudnn.SpatialConvolution keeps nn's).
    """

    def __init__(self, cin: int, cout: int, base_width: int, cardinality: int,
                 conv_skip: bool = False, preact: bool = True):
        super().__init__()
        half, d = cout // 2, cout // base_width
        self.ratios = pyramid_ratios(cardinality)
        self.bn1 = nn.BatchNorm2d(cin) if preact else None
        self.conv1 = nn.Conv2d(cin, half, 1)
        self.bn2 = nn.BatchNorm2d(half)
        self.conv2 = nn.Conv2d(half, half, 3, padding=1)
        self.pyr_bn = nn.BatchNorm2d(cin) if preact else None
        self.pyr_conv1 = nn.Conv2d(cin, d, 1)
        self.pyr_conv1.branches_out = cardinality  # read by --init multibranch (Eq. 15's C_o)
        self.pyr_bn1 = nn.BatchNorm2d(d)
        self.levels = nn.ModuleList(nn.Conv2d(d, d, 3, padding=1) for _ in self.ratios)
        self.pyr_bn2 = nn.BatchNorm2d(d)
        self.pyr_conv2 = nn.Conv2d(d, half, 1)
        self.pyr_conv2.branches_in = cardinality  # PRM.lua:53 a.nBranchIn = C
        self.bn3 = nn.BatchNorm2d(half)
        self.conv3 = nn.Conv2d(half, cout, 1)
        self.skip = skip_layer(cin, cout, conv_skip)
        g = torch.Generator().manual_seed(EVAL_SEED)
        self.register_buffer("eval_regions", torch.rand(
            cardinality, 1, d, 2, generator=g, device="cpu"), persistent=False)

    def regions(self, level: int, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.training:
            u = REGIONS.draw(n, x.shape[1], x.device)
        else:
            u = self.eval_regions[level].repeat(n, 1, 1)
        return u.to(x.dtype)

    def pyramid(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over c of Up(conv3x3_c(FMP_{r_c}(x))) (PRM.lua:26-41): fractional max-pooling
        with 2x2 windows (:32), output floor(H r_c) x floor(W r_c) as torch/nn's
        SpatialFractionalMaxPooling.lua:81-103 sizes it; bilinear upsampling with
        align_corners=True, the sampling of Torch7's SpatialUpSamplingBilinear (torch/nn
        lib/THNN/generic/SpatialUpSamplingBilinear.c:76-77: (in-1)/(out-1)) (:34)."""
        h, w = x.shape[-2:]
        out = None
        for c, (ratio, conv) in enumerate(zip(self.ratios, self.levels)):
            y = F.fractional_max_pool2d(x, 2, output_size=(int(h * ratio), int(w * ratio)),
                                        _random_samples=self.regions(c, x))
            y = F.interpolate(conv(y), size=(h, w), mode="bilinear", align_corners=True)
            out = y if out is None else out + y
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x if self.bn1 is None else F.relu(self.bn1(x))
        a = self.conv2(F.relu(self.bn2(self.conv1(a))))
        b = x if self.pyr_bn is None else F.relu(self.pyr_bn(x))
        b = self.pyramid(F.relu(self.pyr_bn1(self.pyr_conv1(b))))
        b = self.pyr_conv2(F.relu(self.pyr_bn2(b)))
        out = self.conv3(F.relu(self.bn3(a + b)))
        return out + (x if self.skip is None else self.skip(x))


# --------------------------------------------------------------------------------------------
# The hourglass and the network


class PyramidHourglass(nn.Module):
    """hg-prm.lua:10-35: ``hourglass(n, f, nModules, ...)`` with ``modules`` blocks at each
    step; a PRM where the level allows it (:11-12), PyraNet's plain Residual elsewhere."""

    def __init__(self, depth: int, features: int, modules: int, base_width: int,
                 cardinality: int):
        super().__init__()

        def blocks(pyramid: bool, conv_skip: bool = False) -> nn.Sequential:
            if pyramid:
                return nn.Sequential(*(PRM(features, features, base_width, cardinality,
                                           conv_skip) for _ in range(modules)))
            return nn.Sequential(*(Residual(features, features, conv_skip)
                                   for _ in range(modules)))

        up, down = depth >= 2, depth >= 3                           # hg-prm.lua:11-12
        self.up1 = blocks(up)                                       # :15-16
        self.low1 = blocks(down)                                    # :19-20
        self.low2 = PyramidHourglass(depth - 1, features, modules, base_width, cardinality) \
            if depth > 1 else blocks(down)                          # :22-27
        self.low3 = blocks(down, conv_skip=True)                    # :29-30, useConv = true

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low = self.low3(self.low2(self.low1(F.max_pool2d(x, 2, 2))))     # :19 cudnn 2x2/2
        return up1 + F.interpolate(low, scale_factor=2, mode="nearest")  # :31-34


class PyraNet(nn.Module):
    """hg-prm.lua:48-89. ``forward`` returns (stacks, batch, joints, H/4, W/4), as
    :class:`~hgx.models.hourglass.StackedHourglass` does."""

    def __init__(self, stacks: int = 8, features: int = 256, modules: int = 1, joints: int = 16,
                 depth: int = 4, base_width: int = 6, cardinality: int = 30):
        super().__init__()
        self.stacks = stacks

        def prm(cin, cout, preact=True):
            return PRM(cin, cout, base_width, cardinality, preact=preact)

        self.stem = nn.Sequential(
            nn.Conv2d(3, 64, 7, stride=2, padding=3),      # hg-prm.lua:55
            nn.BatchNorm2d(64),                            # :56
            nn.ReLU(inplace=True),
            prm(64, 128, preact=False),                    # :57 r1, 'no_preact'
            nn.MaxPool2d(2, 2),                            # :58
            prm(128, 128),                                 # :59 r4
            prm(128, features),                            # :60 r5
        )
        self.hourglasses = nn.ModuleList(
            PyramidHourglass(depth, features, modules, base_width, cardinality)
            for _ in range(stacks))                        # :66 hourglass(4, ...)
        self.preact = nn.ModuleList(nn.BatchNorm2d(features) for _ in range(stacks))  # :69
        self.lin = nn.ModuleList(                          # :70, lin() at :37-41
            nn.Sequential(nn.Conv2d(features, features, 1), nn.BatchNorm2d(features),
                          nn.ReLU(inplace=True))
            for _ in range(stacks))
        self.heads = nn.ModuleList(nn.Conv2d(features, joints, 1) for _ in range(stacks))  # :73
        self.merge_features = nn.ModuleList(nn.Conv2d(features, features, 1)
                                            for _ in range(stacks - 1))          # :78
        self.merge_heatmaps = nn.ModuleList(nn.Conv2d(joints, features, 1)
                                            for _ in range(stacks - 1))          # :79

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        outputs = []
        for i in range(self.stacks):
            y = self.lin[i](F.relu(self.preact[i](self.hourglasses[i](x))))
            heatmaps = self.heads[i](y)
            outputs.append(heatmaps)                       # :74, every stack is supervised
            if i < self.stacks - 1:                        # :77-81
                x = x + self.merge_features[i](y) + self.merge_heatmaps[i](heatmaps)
        return torch.stack(outputs)


# --------------------------------------------------------------------------------------------
# Recognising a state dict of this family

MARKER = "stem.3.levels.0.weight"  # r1's first pyramid level: every PyraNet has it


def _count(keys: set[str], fmt: str) -> int:
    n = 0
    while fmt.format(n) in keys:
        n += 1
    return n


def infer_arch(sd: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """The PyraNet arguments of a state dict with hgx's keys (KeyError if one is missing).
    base_width enters only through the pyramid widths D = floor(cout / base_width), so the
    smallest base_width giving the stored widths is returned: every such value builds the
    same network."""
    keys = set(sd)
    joints, features = sd["heads.0.weight"].shape[:2]
    depth = 0
    while f"hourglasses.0{'.low2' * depth}.up1.0.conv1.weight" in keys:
        depth += 1
    widths = {128: sd["stem.3.pyr_conv1.weight"].shape[0],
              int(features): sd["stem.6.pyr_conv1.weight"].shape[0]}
    fits = [b for b in range(1, 129) if all(c // b == d for c, d in widths.items())]
    if not fits:
        raise KeyError("stem.6.pyr_conv1.weight (pyramid widths fit no base width)")
    return dict(arch="hg-prm", stacks=_count(keys, "heads.{}.weight"), features=int(features),
                modules=_count(keys, "hourglasses.0.up1.{}.conv1.weight"), joints=int(joints),
                depth=depth, mid=None, stem="original", base_width=fits[0],
                cardinality=_count(keys, "stem.3.levels.{}.weight"))
