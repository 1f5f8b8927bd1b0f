"""Where the model runs and in what precision.

CPU: fp32, channels_last (training step on 2 cores: +24% img/s for HG2 x 256 at 256 px,
`python benchmarks/bench_train_step.py`; +57% for the demo's 64-feature model at 128 px). CUDA: bf16 autocast, channels_last, cudnn benchmark and TF32; the loss stays fp32.
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


def setup_runtime(opts, local_rank: int = 0) -> Runtime:
    device = select_device(opts.device)
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        device = torch.device("cuda", local_rank)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        return Runtime(device, "bf16", True)
    torch.set_flush_denormal(True)  # denormal weights/activations slow CPUs down many-fold
    return Runtime(device, "fp32", True)
