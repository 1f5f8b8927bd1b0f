"""Reading stacked-hourglass checkpoints (ours and two public PyTorch peers) into our model's keys:
the file, safely (weights only where possible), its container, the layout (``hourglass_peers``).

Three on-disk layouts are recognised from their state-dict keys, never from the file name:

* ``hgx``: an hgx snapshot ``{"format": "hgx-snapshot", "model": state_dict, "options": {...}}``
  or a bare state dict of one of hgx's networks (hg, hg-prm, hg-atten: ``hgx.models``).
* ``pytorch_stacked_hourglass`` (princeton-vl): ``checkpoint.pt`` =
  ``{"state_dict", "optimizer", "epoch"}``, keys prefixed ``model.module.``. Its ``Residual``
  always stores ``skip_layer.conv`` even when the channel count is unchanged; those weights are
  never used and are dropped here.
* ``pytorch-pose`` (bearpaw): ``checkpoint.pth.tar`` / ``model_best.pth.tar`` =
  ``{"epoch", "arch", "state_dict", "best_acc", "optimizer"}``, keys prefixed ``module.``. Its stem
  is our ``stem="bearpaw"``.

Any key prefix (``model.module.``, ``module.``, ``_orig_mod.``, none) and a bare state dict saved
without the wrapping dict are accepted. The architecture (stacks, features, modules, joints,
depth, mid, stem) is inferred from tensor shapes and key counts; optimizer state is ignored.
BatchNorm ``num_batches_tracked`` buffers are optional (pre-0.4.1 files lack them; zeros are
filled in). Anything else raises :class:`~hgx.errors.HgxError` with a one-line message.
"""
from __future__ import annotations

import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from hgx.errors import HgxError
from hgx.models import build_arch
from hgx.models.hourglass_peers import (
    ARCH_KEYS,
    BEARPAW,
    HGX,
    LAYOUTS,
    PRINCETON,
    find_prefix,
    infer_hgx_arch,
)

EXPECTED = ("expected an hgx snapshot, a pytorch_stacked_hourglass checkpoint.pt "
            "or a pytorch-pose model_best.pth.tar")


@dataclass
class LoadedModel:
    """A checkpoint translated to our model.

    ``state_dict`` has exactly the keys of ``build_arch(arch)``; ``source`` names the layout
    it was read from; ``extra`` holds the small metadata stored next to the weights (epoch,
    best_acc, arch name, hgx options...), never optimizer state. ``weights_only`` is False when the
    file held Python objects beyond tensors and had to be unpickled in full (known layouts only).
    """

    state_dict: dict[str, torch.Tensor]
    arch: dict[str, Any]
    source: str
    extra: dict[str, Any] = field(default_factory=dict)
    weights_only: bool = True


# --------------------------------------------------------------------------------------------
# Reading the file


def _not_a_checkpoint(path, why: str = "") -> HgxError:
    why = f" ({why})" if why else ""
    return HgxError(f"{path} is not a checkpoint hgx can read{why}; {EXPECTED}")


def _corrupt(path, err: BaseException) -> HgxError:
    text = " ".join(str(err).split())
    if isinstance(err, EOFError) or any(s in text for s in (
            "EOF", "central directory", "failed reading zip", "truncated")):
        why = "it is truncated or corrupt (the data ends early)"
    elif "Weights only load failed" in text or isinstance(err, (pickle.UnpicklingError,
                                                                 KeyError, ValueError)):
        why = "it is corrupt or was not written by torch.save"
    else:
        why = f"it is corrupt: {type(err).__name__}: {text[:120]}"
    return HgxError(f"{path} cannot be read as a checkpoint, {why}; copy or download it again "
                    f"({EXPECTED})")


_SCAN_BYTES = 32 << 20


def _pickle_strings(path: Path) -> set[str]:
    """The string constants in a torch.save file's pickle(s), read without executing anything."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if not names:
                return set()
            data = zf.read(names[0])
    else:
        with open(path, "rb") as f:  # legacy format: pickles first, then raw storage bytes
            data = f.read(_SCAN_BYTES)
    found: set[str] = set()
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        start = stream.tell()
        try:
            for op, arg, _ in pickletools.genops(stream):
                if isinstance(arg, str):
                    found.add(arg)
                if op.name == "STOP":
                    break
        except Exception:  # noqa: BLE001 - raw storage bytes or truncation end the scan
            break
        if stream.tell() == start:
            break
    return found


_KNOWN_MARKERS: tuple[Callable[[str], bool], ...] = (
    lambda s: s == "hgx-snapshot",
    lambda s: s.endswith("hourglasses.0.up1.0.bn1.weight"),
    lambda s: s.endswith("hgs.0.0.up1.bn1.weight"),
    lambda s: s.endswith("hg.0.hg.0.0.0.bn1.weight"),
)


def _looks_known(path: Path) -> bool:
    try:
        strings = _pickle_strings(path)
    except Exception:  # noqa: BLE001
        return False
    return any(marker(s) for s in strings for marker in _KNOWN_MARKERS)


def _torch_load(path: Path) -> tuple[Any, bool]:
    """``torch.load`` on CPU, weights only when possible. Returns (object, weights_only)."""
    if not path.exists():
        raise HgxError(f"{path} does not exist; check the checkpoint path")
    if not path.is_file():
        raise HgxError(f"{path} is not a file; pass the checkpoint file itself ({EXPECTED})")
    try:
        with warnings.catch_warnings():  # torch's notes on foreign pickles: not for the user
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True), True
    except pickle.UnpicklingError as err:
        if "Unsupported global" not in str(err):
            raise _corrupt(path, err) from None
        rejected = re.search(r"GLOBAL (\S+)", str(err))
        rejected_name = rejected.group(1) if rejected else "a Python object"
        if not _looks_known(path):
            raise HgxError(
                f"{path} holds {rejected_name}, which hgx will not unpickle from a file whose "
                f"layout it does not recognise; {EXPECTED} (or re-save just the state_dict with "
                "torch.save(model.state_dict(), path))") from None
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001 - zip/EOF/storage errors all mean a bad file
        raise _corrupt(path, err) from None
    # A known layout with extra Python objects (numpy scalars, argparse.Namespace...): legacy
    # files of the formats we import. Unpickle in full.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=False), False
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # noqa: BLE001
        raise _corrupt(path, err) from None


# --------------------------------------------------------------------------------------------
# Unwrapping: container dict -> (state_dict, extra)


def _is_state_dict(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and len(obj) > 0
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()))


def _plain(value: Any, depth: int = 0) -> tuple[bool, Any]:
    """(keep, value) for metadata: small Python values, 0-dim tensors as numbers."""
    if isinstance(value, torch.Tensor):
        return (value.numel() == 1, value.item() if value.numel() == 1 else None)
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, os.PathLike):
        return True, os.fspath(value)
    if isinstance(value, int):
        return True, int(value)
    if isinstance(value, float):  # also numpy.float64, a float subclass
        return True, float(value)
    if depth < 3 and isinstance(value, (list, tuple)):
        items = [_plain(v, depth + 1) for v in value]
        if all(keep for keep, _ in items):
            values = [v for _, v in items]
            return True, tuple(values) if isinstance(value, tuple) else values
        return False, None
    if depth < 3 and isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            keep, v = _plain(v, depth + 1)
            if keep:
                out[k] = v
        return True, out
    if depth < 3 and hasattr(value, "__dict__") and not isinstance(value, nn.Module):
        return _plain(vars(value), depth)  # argparse.Namespace and the like
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return True, value.item()
        except Exception:  # noqa: BLE001
            return False, None
    return False, None


_HEAVY = {"state_dict", "model", "optimizer", "scheduler", "lr_scheduler", "scaler", "format",
          "rng"}


def _unwrap(obj: Any, path: Path) -> tuple[Mapping[str, torch.Tensor], dict[str, Any], bool]:
    """(state_dict, extra, is_hgx_snapshot)."""
    if isinstance(obj, nn.Module):
        return obj.state_dict(), {}, False
    if not isinstance(obj, Mapping):
        raise _not_a_checkpoint(path, f"it holds a {type(obj).__name__}, not a dict of tensors")
    snapshot = obj.get("format") == "hgx-snapshot"
    if snapshot:
        sd = obj.get("model")
        if not _is_state_dict(sd):
            raise HgxError(f"{path} is an hgx snapshot without model weights ('model' is "
                           f"{type(sd).__name__}); it is damaged, take an earlier snapshot")
    elif _is_state_dict(obj):
        return obj, {}, False
    else:
        sd = None
        for key in ("state_dict", "model_state_dict", "model", "net"):
            cand = obj.get(key)
            if isinstance(cand, nn.Module):
                cand = cand.state_dict()
            if _is_state_dict(cand):
                sd = cand
                break
        if sd is None:
            keys = ", ".join(map(str, list(obj)[:6]))
            raise _not_a_checkpoint(path, f"no state_dict among its keys: {keys}")
    extra = {}
    for k, v in obj.items():
        if k in _HEAVY:
            continue
        keep, v = _plain(v)
        if keep:
            extra[k] = v
    return sd, extra, snapshot


def _fill_num_batches_tracked(sd: dict[str, torch.Tensor]) -> None:
    for k in list(sd):
        if k.endswith(".running_mean"):
            nbt = k[: -len("running_mean")] + "num_batches_tracked"
            if nbt not in sd:
                sd[nbt] = torch.tensor(0, dtype=torch.long)


def _validate(sd: dict[str, torch.Tensor], arch: dict[str, Any], path: Path, source: str):
    """Every key and shape of ``build_arch(arch)`` is present, in its order."""
    try:
        with torch.device("meta"):
            expected = build_arch(arch).state_dict()
    except Exception as err:  # noqa: BLE001
        raise HgxError(f"{path}: inferred architecture {arch} is not buildable ({err}); "
                       "the checkpoint is inconsistent") from None
    for k, t in expected.items():
        if k not in sd:
            raise HgxError(f"{path}: {source} checkpoint has no tensor for '{k}' of the "
                           f"inferred model ({_arch_text(arch)}); it is incomplete")
        if tuple(sd[k].shape) != tuple(t.shape):
            raise HgxError(f"{path}: {source} checkpoint tensor for '{k}' is "
                           f"{list(sd[k].shape)}, expected {list(t.shape)} for "
                           f"{_arch_text(arch)}; the checkpoint is inconsistent")
    unexpected = [k for k in sd if k not in expected]
    if unexpected:
        raise HgxError(f"{path}: unexpected tensor '{unexpected[0]}' for {_arch_text(arch)}")
    return {k: sd[k] for k in expected}


def with_arch(values: dict, arch: Mapping[str, Any], keep=()) -> dict:
    """Option ``values`` with a checkpoint's architecture (``LoadedModel.arch``) for every
    architecture option not in ``keep`` (those the user typed)."""
    out = dict(values)
    arch = {"arch": "hg", **arch}  # a dict without a family is a StackedHourglass's
    for key in ARCH_KEYS:
        if key == "block_widths" and key not in keep:  # absent: every block unpruned
            out[key] = list(arch.get(key) or [])
        elif key != "joints" and key not in keep and key in arch:
            out[key] = 0 if arch[key] is None else arch[key]
    return out


def _arch_text(arch: Mapping[str, Any]) -> str:
    def text(k):
        v = arch.get(k)
        return f"pruned ({len(v) // 2} blocks)" if k == "block_widths" and v else str(v)

    return " ".join(f"{k}={text(k)}" for k in ARCH_KEYS if k in arch
                    and (k != "block_widths" or arch.get(k)))


# --------------------------------------------------------------------------------------------
# Public API


def load_any_checkpoint(path: str | os.PathLike) -> LoadedModel:
    """Read an hgx snapshot or a peer checkpoint; see the module docstring."""
    path = Path(path)
    obj, weights_only = _torch_load(path)
    src, extra, snapshot = _unwrap(obj, path)
    keys = list(src)
    for source, anchors, translate in LAYOUTS:
        if snapshot and source != HGX:
            continue
        prefix = find_prefix(keys, anchors)
        if prefix is None:
            continue
        odd = next((k for k in keys if not k.startswith(prefix)), None)
        if odd is not None:
            raise HgxError(f"{path}: {source} checkpoint with an unexpected tensor '{odd}' "
                           f"(others start with '{prefix}'); it comes from a modified model")
        sd = {k[len(prefix):]: v for k, v in src.items()}
        mapper, arch = translate(sd, path)
        stored = extra.get("options") if snapshot else None
        if arch.get("block_widths") and isinstance(stored, dict) and \
                isinstance(stored.get("mid"), int):
            arch["mid"] = stored["mid"] or None  # pruned: the blocks' widths say the rest
        out = mapper.finish(prefix)
        _fill_num_batches_tracked(out)
        out = _validate(out, arch, path, source)
        return LoadedModel(state_dict=out, arch=arch, source=source, extra=extra,
                           weights_only=weights_only)
    if snapshot:
        raise HgxError(f"{path} is an hgx snapshot whose weights do not have the keys of hgx's "
                       "networks; it is damaged, take an earlier snapshot")
    raise _not_a_checkpoint(path, f"unknown state-dict layout, first key '{keys[0]}'")


def build_from_checkpoint(path: str | os.PathLike) -> tuple[nn.Module, LoadedModel]:
    """Our model with the checkpoint's architecture and weights (strict), in train mode."""
    loaded = load_any_checkpoint(path)
    model = build_arch(loaded.arch)
    try:
        model.load_state_dict(loaded.state_dict, strict=True)
    except RuntimeError as err:  # _validate should make this unreachable
        msg = " ".join(str(err).split())[:200]
        raise HgxError(f"{path}: weights do not load into the inferred model ({msg})") from None
    return model, loaded


def check_compatible(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                     path: str | os.PathLike) -> None:
    """Raise HgxError naming the first tensor of ``state_dict`` that does not fit ``model``."""
    expected = model.state_dict()
    try:
        hint = f" (the checkpoint is {_arch_text(infer_hgx_arch(state_dict, path))})"
    except HgxError:
        hint = ""
    fix = ("make the experiment's model options match the checkpoint, or start from a "
           "checkpoint of this architecture")
    for k, t in expected.items():
        if k not in state_dict:
            if k.endswith("num_batches_tracked"):
                continue
            raise HgxError(f"{path} does not fit this model: it has no tensor '{k}' "
                           f"{list(t.shape)}{hint}; {fix}")
        got = tuple(state_dict[k].shape)
        if got != tuple(t.shape):
            raise HgxError(f"{path} does not fit this model: '{k}' is {list(got)} in the "
                           f"checkpoint but {list(t.shape)} in the model{hint}; {fix}")
    for k in state_dict:
        if k not in expected:
            raise HgxError(f"{path} does not fit this model: unexpected tensor '{k}' "
                           f"{list(state_dict[k].shape)}{hint}; {fix}")


__all__ = ["LoadedModel", "load_any_checkpoint", "build_from_checkpoint", "check_compatible",
           "infer_hgx_arch", "with_arch", "HGX", "PRINCETON", "BEARPAW"]
