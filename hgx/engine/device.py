"""Where the model runs and in what precision.

--precision auto: bf16 autocast on CUDA and on CPUs with native bf16 instructions (AVX512_BF16
or AMX: oneDNN's bf16 convolutions then run at about twice the fp32 rate,
`python benchmarks/bench_train_step.py`), fp32 elsewhere (emulated bf16 is slower than fp32).
The loss is computed in fp32 and the weights and optimizer state stay fp32. channels_last
everywhere; on CUDA also cudnn benchmark and TF32.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from hgx.errors import HgxError


@dataclass
class Runtime:
    device: torch.device
    precision: str          # "fp32" | "bf16"
    channels_last: bool

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def compiled(self, model: torch.nn.Module, enabled: bool) -> torch.nn.Module:
        """``torch.compile(model)`` when asked; the weights stay those of ``model``."""
        return torch.compile(model) if enabled else model

    def autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def state_dict(self, model: torch.nn.Module) -> dict:
        module = getattr(model, "module", model)
        return {k: v.detach().to("cpu", memory_format=torch.contiguous_format).clone()
                for k, v in module.state_dict().items()}


def loader_workers(requested: int, device: torch.device, processes_here: int = 1) -> int:
    """--workers, with -1 (auto) resolved: 2 on the CPU, where the training step is the
    bottleneck by far; on CUDA every core this process may have, less one for itself, up to
    16 (a worker makes about 230 samples/s of 1280x720 JPEGs: benchmarks/bench_loader.py)."""
    if requested >= 0:
        return requested
    if device.type != "cuda":
        return 2
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 2)
    return max(1, min(16, cores // max(1, processes_here) - 1))


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise HgxError(f"--device {name}: no CUDA device is available here; use --device cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise HgxError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here")
    return dev


def cpu_has_native_bf16() -> bool:
    """AVX512_BF16 or AMX-BF16 in this CPU's flags (Linux /proc/cpuinfo; elsewhere no)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def choose_precision(requested: str, device: torch.device) -> str:
    if requested != "auto":
        return requested
    if device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16()):
        return "bf16"
    return "fp32"


def setup_runtime(opts, local_rank: int = 0) -> Runtime:
    device = select_device(opts.device)
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        device = torch.device("cuda", local_rank)
    if opts.threads:  # fixed; 0 = hgx.engine.cpushare.ThreadPolicy adapts it (training)
        torch.set_num_threads(opts.threads)
    precision = choose_precision(getattr(opts, "precision", "auto"), device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return Runtime(device, precision, True)
    torch.set_flush_denormal(True)  # denormal weights/activations slow CPUs down many-fold
    return Runtime(device, precision, True)
