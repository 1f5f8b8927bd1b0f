"""Structured channel pruning of a trained stacked hourglass's residual blocks.

Each residual block is a pre-activation bottleneck (``hourglass.Residual``):

    x -> bn1 -> relu -> conv1 (mid1 filters) -> bn2 -> relu -> conv2 (mid2 filters)
      -> bn3 -> relu -> conv3 (features) -> + skip(x)

Pruning removes whole filters of conv1 and conv2 and slices everything that reads them: bn2
(weight, bias, running mean and variance) and conv2's input channels for a conv1 filter, bn3
and conv3's input channels for a conv2 filter. bn1, conv3's outputs and the skips -- the trunk
that is summed across the hourglass -- keep every channel, so the network's interface and its
other layers are unchanged. This is what both reference scripts do to a bottleneck
(Eric-mingjie/rethinking-network-pruning, ``cifar/network-slimming/resprune.py:179-201``:
inner convs sliced on inputs and outputs, the block's last conv on its inputs only;
``cifar/l1-norm-pruning/res56prune.py:142-171``: a pruned conv's filters, the next conv's
input channels and the BatchNorm between them).

Criteria (which filters a layer keeps):

* ``l1`` -- Li et al. 2017: the L1 norm of each filter, sum |W| over its input channels and
  kernel (res56prune.py:116-117). ``--amount a`` is applied **per layer**, every selected conv
  keeping ``int(filters * (1 - a))`` of its filters with the largest norms, as the script's
  fixed per-stage rates do (res56prune.py:118-124), and at least one.
* ``bn`` -- network slimming, Liu et al. 2017: |gamma| of the BatchNorm that follows the conv
  (bn2 for conv1, bn3 for conv2). The threshold is **global**, as in resprune.py:54-68: every
  selected layer's |gamma| in one list, and the ``int(total * a)`` smallest are removed
  wherever they are, so layers lose different shares; each keeps at least one channel. Two
  differences from the script: its list holds every BatchNorm, the blocks' input bn1 too
  (whose channels it hides from conv1 with a channel_selection layer, resprune.py:154-166),
  while hgx's holds the bn2/bn3 it can prune (the trunk stays whole); and it removes the
  channels with |gamma| <= y[int(total * a)] (``gt(thre)``, resprune.py:67-77), one more than
  ``int(total * a)``, where hgx removes exactly that many. The sparsity training that network
  slimming pairs this with (an L1 penalty on gamma, cifar/network-slimming/main.py:122-125,
  ``-sr``) is not part of hgx: the criterion is applied to the model as it was trained.

Kept channels stay in their original order (the scripts' masks, res56prune.py:144).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import torch

from hgx.errors import UsageError
from hgx.models.hourglass import block_names

CRITERIA = ("l1", "bn")


@dataclass
class Plan:
    """Which inner channels of which blocks are kept."""

    criterion: str
    amount: float
    groups: list[str]                       # the block groups pruned
    names: list[str]                        # every block, in block_widths order
    keep: dict[str, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    before: list[int] = field(default_factory=list)   # block_widths before (flat)
    after: list[int] = field(default_factory=list)    # block_widths after (flat)

    @property
    def scope(self) -> str:
        return "per layer" if self.criterion == "l1" else "global"

    def pruned_channels(self) -> tuple[int, int]:
        """Inner channels of the selected blocks, before and after."""
        at = {n: i for i, n in enumerate(self.names)}
        idx = [2 * at[n] + j for n in self.keep for j in (0, 1)]
        return sum(self.before[i] for i in idx), sum(self.after[i] for i in idx)


def groups_of(depth: int) -> list[str]:
    """The groups --levels can name, in network order: stem, 1..depth, heads."""
    return ["stem", *map(str, range(1, depth + 1)), "heads"]


def parse_levels(values: Iterable[str] | None, depth: int) -> list[str]:
    """--levels: stem, heads, hourglass levels 1..depth (1 = outermost), 'hg' for every level,
    'all' (the default) for everything."""
    known = groups_of(depth)
    out: list[str] = []
    if isinstance(values, str):
        values = [values]
    for value in values or ["all"]:
        for part in str(value).replace(",", " ").split():
            key = part.strip().lower()
            chosen = known if key == "all" else known[1:-1] if key == "hg" else [key]
            if any(c not in known for c in chosen):
                raise UsageError(f"--levels {part}: choose among stem, 1..{depth} (hourglass "
                                 "levels, 1 the outermost), hg (every level), heads, or all")
            out += [c for c in chosen if c not in out]
    return [g for g in known if g in out] or known


def _scores(sd: Mapping[str, torch.Tensor], name: str, criterion: str):
    if criterion == "l1":  # filter L1 norms (res56prune.py:116-117)
        return tuple(sd[f"{name}.conv{i}.weight"].abs().sum(dim=(1, 2, 3)) for i in (1, 2))
    # |gamma| of the BatchNorm after the conv (resprune.py:63, 76)
    return tuple(sd[f"{name}.bn{i}.weight"].abs() for i in (2, 3))


def _top(scores: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` largest scores, in channel order (ties: the earlier channel)."""
    order = torch.argsort(-scores.double(), stable=True)[:n]
    return torch.sort(order).values


def plan(sd: Mapping[str, torch.Tensor], stacks: int, depth: int, modules: int,
         criterion: str, amount: float, groups: list[str]) -> Plan:
    """Which channels to keep, from a state dict in hgx's keys."""
    if criterion not in CRITERIA:
        raise UsageError(f"--criterion {criterion}: choose l1 (filter L1 norm, Li et al. "
                         "2017) or bn (|gamma| of the next BatchNorm, network slimming)")
    if not 0 <= amount < 1:
        raise UsageError(f"--amount {amount:g}: expected the fraction of inner channels to "
                         "remove, at least 0 and below 1 (e.g. 0.5)")
    blocks = block_names(stacks, depth, modules)
    p = Plan(criterion, float(amount), list(groups), [n for n, _ in blocks])
    scores = {}
    for name, group in blocks:
        s1, s2 = _scores(sd, name, criterion)
        p.before += [len(s1), len(s2)]
        if group in groups:
            scores[name] = (s1, s2)
    if criterion == "l1":
        for name, pair in scores.items():
            p.keep[name] = tuple(_top(s, max(1, int(len(s) * (1 - amount) + 1e-9)))
                                 for s in pair)
    elif scores:
        flat = torch.cat([s.double() for pair in scores.values() for s in pair])
        n_remove = int(len(flat) * amount + 1e-9)
        removed = torch.zeros(len(flat), dtype=torch.bool)
        removed[torch.argsort(flat, stable=True)[:n_remove]] = True
        at = 0
        for name, pair in scores.items():
            kept = []
            for s in pair:
                mine = removed[at:at + len(s)]
                at += len(s)
                kept.append(_top(s, max(1, len(s) - int(mine.sum()))))
            p.keep[name] = tuple(kept)
    for (name, _), w1, w2 in zip(blocks, p.before[::2], p.before[1::2]):
        k = p.keep.get(name)
        p.after += [len(k[0]), len(k[1])] if k else [w1, w2]
    return p


def _slicers(p: Plan) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """For each tensor key a pruned block changes: how to cut it (dim 0 = outputs)."""
    out: dict[str, Callable] = {}
    for name, (k1, k2) in p.keep.items():
        def rows(k):
            return lambda t: t.index_select(0, k)

        def cols(k):
            return lambda t: t.index_select(1, k)

        out[f"{name}.conv1.weight"] = rows(k1)
        out[f"{name}.conv1.bias"] = rows(k1)
        for t in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.bn2.{t}"] = rows(k1)
            out[f"{name}.bn3.{t}"] = rows(k2)
        out[f"{name}.conv2.weight"] = lambda t, k1=k1, k2=k2: t.index_select(0, k2) \
            .index_select(1, k1)
        out[f"{name}.conv2.bias"] = rows(k2)
        out[f"{name}.conv3.weight"] = cols(k2)
    return out


def apply(sd: Mapping[str, torch.Tensor], p: Plan) -> dict[str, torch.Tensor]:
    """The pruned state dict (same keys, in the same order; new tensors)."""
    cut = _slicers(p)
    return {k: (cut[k](v) if k in cut else v).clone() for k, v in sd.items()}


def apply_optimizer(state: dict | None, param_names: list[str], p: Plan) -> dict | None:
    """An optimizer state_dict for the pruned parameters: every per-parameter tensor shaped
    like its parameter (RMSprop's square_avg, Adam's moments, SGD's momentum) cut like the
    parameter, the rest (step counts) kept. ``param_names``: the model's named_parameters
    order, which is the optimizer's index order."""
    if not state:
        return state
    cut = _slicers(p)
    out = {"param_groups": state["param_groups"], "state": {}}
    for index, entry in state["state"].items():
        name = param_names[int(index)]
        fn = cut.get(name)
        out["state"][index] = {
            k: (fn(v).clone() if fn is not None and isinstance(v, torch.Tensor) and v.dim() > 0
                else v) for k, v in entry.items()}
    return out


def zeroed(sd: Mapping[str, torch.Tensor], p: Plan) -> dict[str, torch.Tensor]:
    """The unpruned state dict in which the removed channels contribute nothing: what the
    pruned network computes, in the original shapes (for tests and checks).

    In a pre-activation block a removed conv1 filter reaches conv2 through bn2 and a ReLU, and
    BatchNorm in eval mode maps a zero input to ``beta - gamma * mean / sqrt(var + eps)``, not
    to zero. So zeroing the filter alone is not enough: its bn2 gamma and beta are zeroed too
    (the channel then leaves bn2, and the ReLU, as exactly 0). Likewise conv2's removed filters
    and bn3."""
    out = {k: v.clone() for k, v in sd.items()}
    for name, kept in p.keep.items():
        for i, k in zip((1, 2), kept):
            gone = torch.ones(out[f"{name}.conv{i}.weight"].shape[0], dtype=torch.bool)
            gone[k] = False
            for key in (f"{name}.conv{i}.weight", f"{name}.conv{i}.bias",
                        f"{name}.bn{i + 1}.weight", f"{name}.bn{i + 1}.bias"):
                out[key][gone] = 0
    return out
