"""ONE schema of every experiment option: default, type, help and validation.

CLI flags (``--batch-size``), ``options.yaml`` keys (``batch_size``) and presets
(``experiments/*.yaml``) are all derived from ``SCHEMA``. Precedence when options are resolved:
defaults < preset < parent experiment (continue/branch) < flags the user actually typed.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hgx.errors import UsageError


@dataclass(frozen=True)
class Option:
    name: str                    # snake_case key in options.yaml; the flag is --kebab-case
    type: type                   # int, float, str, bool or list (of ``item``)
    default: Any
    help: str
    group: str
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    item: type = float           # element type of a list option
    arch: bool = False           # fixed once an experiment has weights (continue/branch)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


O = Option
SCHEMA: tuple[Option, ...] = (
    # -- data ---------------------------------------------------------------------------------
    O("dataset", str, "synthetic", "Dataset: synthetic (generated on first use), mpii, flic, "
      "lsp, coco, mpii-lsp, or custom (any h5 in pose-hg-train's layout with joint_names and "
      "flip_pairs attributes; `hgx data prepare` writes them).", "data",
      choices=("synthetic", "mpii", "flic", "lsp", "coco", "mpii-lsp", "custom")),
    O("data_dir", str, "", "Directory with annot/{train,valid,test}.h5 and images/ (default: "
      "the synthetic cache, or ./data/<dataset>).", "data"),
    O("synth_size", str, "1280x720", "Synthetic dataset: image size WxH.", "data"),
    O("synth_train", int, 1000, "Synthetic dataset: training people.", "data", min=1),
    O("synth_valid", int, 200, "Synthetic dataset: validation people.", "data", min=1),
    O("synth_test", int, 200, "Synthetic dataset: test people.", "data", min=1),
    O("synth_seed", int, 0, "Synthetic dataset: generator seed.", "data", min=0),
    O("crop_cache", bool, False, "Read people's regions from the crop cache (`hgx data "
      "cache`) instead of decoding whole photographs.", "data"),
    O("input_res", int, 256, "Network input resolution (px).", "data", min=16, arch=False),
    O("output_res", int, 64, "Heatmap resolution (px); input-res / 4 for the hourglass.",
      "data", min=4),
    O("scale_aug", float, 0.25, "Scale augmentation: s * 2^clamp(N(0,1)*x, +-2x).", "data",
      min=0),
    O("rotate_aug", float, 30.0, "Rotation augmentation: clamp(N(0,1)*x, +-2x) degrees.",
      "data", min=0),
    O("rotate_prob", float, 0.4, "Probability that a training sample is rotated.", "data",
      min=0, max=1),
    O("flip_prob", float, 0.5, "Probability of a horizontal flip (left/right joints swapped).",
      "data", min=0, max=1),
    O("color_aug", float, 0.4, "Colour augmentation: each RGB channel * U(1-x, 1+x).", "data",
      min=0, max=1),
    O("hm_sigma", float, 1.75, "Heatmap Gaussian sigma (heatmap px; 7x7 window).", "data",
      min=0.1),
    # -- model --------------------------------------------------------------------------------
    O("arch", str, "hg", "Network family (their -netType names): hg (pose-hg-train's stacked "
      "hourglass), hg-prm (PyraNet's pyramid residual modules, bearpaw/PyraNet "
      "models/hg-prm.lua) or hg-atten (Hg-SAGAN's self-attention heads, idotc/Hg-SAGAN "
      "models/hg-atten.lua).", "model", choices=("hg", "hg-prm", "hg-atten"), arch=True),
    O("stacks", int, 8, "Number of stacked hourglasses.", "model", min=1, max=16, arch=True),
    O("features", int, 256, "Channels in the hourglasses.", "model", min=4, arch=True),
    O("modules", int, 1, "Residual modules at each step.", "model", min=1, arch=True),
    O("depth", int, 4, "Hourglass depth (downsamplings).", "model", min=1, max=6, arch=True),
    O("mid", int, 0, "Inner (bottleneck) width of the residual blocks, 0 = features/2 "
      "(the pruning fork's --N; its --M, the outer width, is --features).", "model",
      min=0, arch=True),
    O("stem", str, "original", "Stem: pose-hg-train's original, or bearpaw (pytorch-pose).",
      "model", choices=("original", "bearpaw"), arch=True),
    O("block_widths", list, [], "Inner widths of every residual block, two per block (conv1's "
      "and conv2's filters) in block order (stem, each stack's hourglass outside in, the "
      "heads' blocks; `hgx show` names them); empty = every block unpruned. Written by `hgx "
      "prune`.", "model", item=int, min=1, arch=True),
    O("base_width", int, 6, "hg-prm: a PRM's pyramid has floor(its output channels / this) "
      "channels (PyraNet -baseWidth; its 2-stack script uses 9).", "model", min=1, arch=True),
    O("cardinality", int, 30, "hg-prm: pyramid levels C of a PRM, subsampled by 2^(-c/C), "
      "c = 1..C (PyraNet -cardinality; its 2-stack script uses 4).", "model", min=1, max=64,
      arch=True),
    O("init", str, "pytorch", "Initial weights of a new experiment: pytorch (PyTorch's "
      "defaults: convolutions U(+-1/sqrt(fan-in)) as Torch7's, BatchNorm scale 1), torch7 (as "
      "the Torch7 originals started: BatchNorm scale ~ U(0,1)) or multibranch (the PyraNet "
      "paper's Eq. 15 for every convolution, Var = 1/(alpha^2 (C_i n_i + C_o n_o)), alpha 0.5).",
      "model", choices=("pytorch", "torch7", "multibranch"), arch=True),
    # -- optimisation -------------------------------------------------------------------------
    O("epochs", int, 100, "TOTAL number of epochs of the experiment.", "train", min=1),
    O("train_iters", int, 8000, "Training iterations per epoch (0 = whole split).", "train",
      min=0),
    O("valid_iters", int, 1000, "Validation iterations per epoch (0 = whole split).", "train",
      min=0),
    O("batch_size", int, 6, "Training batch size.", "train", min=1),
    O("valid_batch_size", int, 1, "Validation batch size (pose-hg-train -validBatch): the "
      "accuracy is averaged per batch, then over batches, as its train.lua does.", "train",
      min=1),
    O("valid_flip", bool, True, "Validate each sample averaged with its mirrored image, as "
      "pose-hg-train's train.lua does (the logged accuracy and PCKh; the loss is the unflipped "
      "one's).", "train"),
    O("optimizer", str, "rmsprop", "Optimizer.", "train", choices=("rmsprop", "adam", "sgd")),
    O("lr", float, 2.5e-4, "Learning rate.", "train", min=0),
    O("momentum", float, 0.0, "Momentum (rmsprop, sgd).", "train", min=0, max=1),
    O("weight_decay", float, 0.0, "Weight decay.", "train", min=0),
    O("alpha", float, 0.99, "RMSprop smoothing constant.", "train", min=0, max=1),
    O("epsilon", float, 1e-8, "Optimizer epsilon.", "train", min=0),
    O("schedule", list, [], "Epochs at which the lr is multiplied by --gamma, e.g. 60 90.",
      "train", item=int),
    O("gamma", float, 0.1, "LR multiplier at each --schedule epoch.", "train", min=0),
    O("max_iters", int, 0, "Stop after this many training iterations in all (0 = no limit).",
      "train", min=0),
    O("seed", int, 0, "Random seed (weights, data order, augmentation).", "train", min=0),
    # -- run ----------------------------------------------------------------------------------
    O("snapshot", int, 10, "Keep a snapshot every N epochs (the latest and best are always "
      "kept; 0 = only those).", "run", min=0),
    O("checkpoint_minutes", float, 5.0, "Also snapshot inside an epoch every N minutes "
      "(0 = only at epoch ends).", "run", min=0),
    O("workers", int, -1, "Data-loading worker processes: 0 = in the main process, -1 = "
      "auto (2 on the CPU; on CUDA the cores per GPU process less one, at most 16).", "run",
      min=-1),
    O("device", str, "auto", "Device: auto, cpu, cuda or cuda:N.", "run"),
    O("precision", str, "auto", "Arithmetic of the network: bf16 autocast (the loss and the "
      "optimizer stay fp32) or fp32; auto = bf16 on CUDA and on CPUs with native bf16 "
      "(AVX512_BF16 or AMX), fp32 elsewhere.", "run", choices=("auto", "fp32", "bf16")),
    O("compile", bool, False, "torch.compile the model (first steps are slow while it "
      "compiles).", "run"),
    O("threads", int, 0, "CPU threads for torch; 0 = auto: the cores no other process is "
      "using, looked at again every 10 s (a fixed number keeps a resumed run bit-identical).",
      "run", min=0),
    O("nproc", int, 1, "Processes (GPUs) per node: >1 trains with DistributedDataParallel "
      "through torchrun; --batch-size is per process.", "run", min=1),
    O("nnodes", int, 1, "Nodes (torchrun --nnodes): run the same hgx command on each, adding "
      "its --node-rank; the experiments directory must be on a filesystem they share.", "run",
      min=1),
    O("node_rank", int, 0, "This node's rank (torchrun --node-rank). Nodes other than 0 only "
      "join: node 0's hgx creates, locks and writes the experiment.", "run", min=0),
    O("master_addr", str, "127.0.0.1", "Address of node 0 (torchrun --master-addr).", "run"),
    O("master_port", int, 29500, "Port on node 0 (torchrun --master-port).", "run", min=1,
      max=65535),
    O("sync_bn", bool, False, "Synchronise BatchNorm statistics across processes.", "run"),
    O("end_samples", int, 0, "When training finishes, draw the predicted (and true) "
      "skeletons of this many validation people into ./NAME-samples.png, as `hgx show NAME "
      "--samples N` does (0 = none).", "run", min=0, max=64),
    # -- adversarial training (Hg-SAGAN: idotc/Hg-SAGAN opts.lua:52-57, 79-82) --------------
    O("adversarial", bool, False, "Train against Hg-SAGAN's BEGAN-style discriminator (an "
      "hourglass autoencoder of the heatmaps with SARM_A attention).", "adversarial"),
    O("lr_d", float, 2.5e-4, "Discriminator's Adam learning rate (Hg-SAGAN -LR_D).",
      "adversarial", min=0),
    O("lr_decay_d", float, 0.0, "Discriminator's lr decay: lr / (1 + step * x) (-LRdecay_D).",
      "adversarial", min=0),
    O("epsilon_d", float, 1e-8, "Discriminator's Adam epsilon (-epsilon_D).", "adversarial",
      min=0),
    O("init_kt", float, 0.0, "Initial k_t, the weight of the fake term in D's loss "
      "(-init_Kt).", "adversarial", min=0, max=1),
    O("lambda_g", float, 0.1, "Weight of the adversarial term in the generator's loss "
      "(-lambda_G).", "adversarial", min=0),
    O("lambda_k", float, 0.001, "k_t's learning rate (-lambda_k).", "adversarial", min=0),
    O("gamma_gd", float, 0.5, "BEGAN's diversity ratio gamma in k_t's update (-gamma_gd).",
      "adversarial", min=0),
    O("d_modules", int, 1, "Discriminator's residual modules at each step (Hg-SAGAN's "
      "-nModules).", "adversarial", min=1),
    O("load_model", str, "", "Start from these weights (hgx snapshot, pytorch_stacked_hourglass "
      "checkpoint.pt or pytorch-pose model_best.pth.tar) with a fresh optimizer.", "run"),
)

BY_NAME: dict[str, Option] = {o.name: o for o in SCHEMA}
Options = dataclasses.make_dataclass(
    "Options",
    [(o.name, o.type, dataclasses.field(default_factory=(lambda d=o.default: _copy(d))))
     for o in SCHEMA],
    frozen=True,
)
Options.__doc__ = "Fully resolved experiment options (attribute access, one field per option)."


def _copy(value):
    return list(value) if isinstance(value, list) else value


def defaults() -> dict[str, Any]:
    return {o.name: _copy(o.default) for o in SCHEMA}


def coerce(name: str, value: Any, source: str = "") -> Any:
    """Check and convert one value. ``source`` names where it came from, for the message."""
    where = f" in {source}" if source else ""
    opt = BY_NAME.get(name)
    if opt is None:
        raise UsageError(f"unknown option '{name}'{where}; `hgx new --help` lists the options")
    label = opt.flag if not source else f"'{name}'"

    def bad(expected: str):
        return UsageError(f"{label}{where}: expected {expected}, got {value!r}")

    if opt.type is list:
        items = value
        if isinstance(value, str):
            items = [v for v in value.replace(",", " ").split() if v]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            items = [value]
        if not isinstance(items, (list, tuple)):
            raise bad(f"a list of {opt.item.__name__}s")
        try:
            out = [_scalar(opt.item, v) for v in items]
        except (TypeError, ValueError):
            raise bad(f"a list of {opt.item.__name__}s") from None
        low = next((v for v in out if opt.min is not None and v < opt.min), None)
        if low is not None:
            raise UsageError(f"{label}{where}: {low} is below the minimum {opt.min:g}")
        return out
    try:
        out = _scalar(opt.type, value)
    except (TypeError, ValueError):
        raise bad({int: "an integer", float: "a number", bool: "true or false",
                   str: "a string"}[opt.type]) from None
    if opt.choices and out not in opt.choices:
        raise UsageError(f"{label}{where}: {out!r} is not one of {', '.join(opt.choices)}")
    if opt.min is not None and out < opt.min:
        raise UsageError(f"{label}{where}: {out} is below the minimum {opt.min:g}")
    if opt.max is not None and out > opt.max:
        raise UsageError(f"{label}{where}: {out} is above the maximum {opt.max:g}")
    if name == "synth_size":
        parse_size(out, label)
    if name == "device" and not (out in ("auto", "cpu", "cuda") or out.startswith("cuda:")):
        raise UsageError(f"{label}{where}: {out!r} is not auto, cpu, cuda or cuda:N")
    return out


def _scalar(kind: type, value: Any):
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise TypeError(value)
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(value)
            return int(value)
        return int(str(value), 10) if isinstance(value, str) else int(value)
    if kind is float:
        if isinstance(value, bool):
            raise TypeError(value)
        out = float(value)
        if not math.isfinite(out):
            raise ValueError(value)
        return out
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise TypeError(value)
        return str(value)
    raise TypeError(kind)


def parse_size(text: str, label: str = "--synth-size") -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if w < 32 or h < 32:
            raise ValueError
    except ValueError:
        raise UsageError(f"{label}: expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    return w, h


def check_dict(values: dict, source: str) -> dict[str, Any]:
    """Validate a partial mapping of options (a preset, a YAML file, typed flags)."""
    if not isinstance(values, dict):
        raise UsageError(f"{source}: expected a mapping of option: value, got "
                         f"{type(values).__name__}")
    return {k: coerce(k, v, source) for k, v in values.items()}


def resolve(preset: dict | None = None, parent: dict | None = None,
            typed: dict | None = None) -> Options:
    """defaults < preset < parent experiment < flags the user actually typed."""
    merged = defaults()
    for layer in (preset, parent, typed):
        merged.update(layer or {})
    return Options(**merged)


def as_dict(opts) -> dict[str, Any]:
    return dataclasses.asdict(opts)


def differences(a: dict, b: dict) -> dict[str, tuple[Any, Any]]:
    """Options whose values differ between two option mappings (schema order)."""
    keys = [o.name for o in SCHEMA] + sorted((set(a) | set(b)) - set(BY_NAME))
    return {k: (a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)}


# -- presets ------------------------------------------------------------------------------------
def presets_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "experiments"


def available_presets() -> list[str]:
    d = presets_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


def load_preset(name: str) -> dict[str, Any]:
    """A preset by name (``experiments/NAME.yaml``) or by path to a YAML file."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(available_presets()) or "none found"
        raise UsageError(f"preset '{name}' not found; known presets: {known} "
                         "(or give a path to a .yaml file)")
    return check_dict(read_yaml(path), str(path))


def read_yaml(path: Path) -> Any:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path}:{line} is not valid YAML; fix or restore the file") from None
    except (UnicodeDecodeError, ValueError):
        raise UsageError(f"{path} is not a text (YAML) file; fix or restore the file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror}") from None
    return {} if data is None else data


def dump_yaml(values: dict) -> str:
    """options.yaml text: schema order, grouped, one key per option."""
    lines, group = [], None
    for opt in SCHEMA:
        if opt.name not in values:
            continue
        if opt.group != group:
            group = opt.group
            lines.append(f"# {group}")
        # one line per option; a long list (a pruned network's widths) wraps at 100 columns
        width = 100 if isinstance(values[opt.name], list) else 1000
        lines.append(yaml.safe_dump({opt.name: values[opt.name]}, default_flow_style=True,
                                    width=width).strip().removeprefix("{").removesuffix("}"))
    return "\n".join(lines) + "\n"
