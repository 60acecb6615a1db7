"""Where each module runs: one place decides device and dtype, and measures what a load cost."""
from __future__ import annotations

import logging
import os
from typing import Any

import psutil

from .module import Compute, ComputeSettings, ModuleSettings, Resources

log = logging.getLogger("greenroom.resources")


def cuda_available() -> bool:
    """True when torch is importable and sees a CUDA device. Never imports torch just to say no."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def choose_compute(module: str, resources: Resources, settings: ModuleSettings, server_device: str,
                   cuda_device: str, has_cuda: bool | None = None) -> Compute:
    """Decide device and dtype for one module.

    CUDA is used when the module can use it, it was asked for (module setting or
    the server's --cuda) and a device is there; otherwise the CPU, with the reason.
    """
    wanted = settings.device if isinstance(settings, ComputeSettings) else "auto"
    dtype = settings.dtype if isinstance(settings, ComputeSettings) else "auto"
    if wanted == "auto":
        wanted = server_device if resources.device != "cpu" else "cpu"
    if wanted == "cpu" or resources.device == "cpu":
        reason = "module runs on CPU only" if resources.device == "cpu" else "CPU requested"
        return Compute("cpu", "float32" if dtype in ("auto", "float16") else dtype, reason)
    if has_cuda is None:
        has_cuda = cuda_available()
    if not has_cuda:
        log.warning("%s: CUDA requested but not available; using the CPU", module)
        return Compute("cpu", "float32", "CUDA requested but not available")
    return Compute(cuda_device, resources.gpu_dtype if dtype == "auto" else dtype, "CUDA requested")


def cpu_fallback(compute: Compute) -> Compute:
    return Compute("cpu", "float32", f"load on {compute.device} failed; retried on CPU")


class LoadMeter:
    """Measures the RSS (and CUDA memory) a module's load adds."""

    def __init__(self) -> None:
        self._proc = psutil.Process(os.getpid())

    def snapshot(self) -> dict[str, int]:
        snap = {"rss": self._proc.memory_info().rss}
        cuda = _cuda_allocated()
        if cuda is not None:
            snap["cuda"] = cuda
        return snap

    @staticmethod
    def delta_mb(before: dict[str, int], after: dict[str, int]) -> dict[str, Any]:
        out = {"rss_mb": round((after["rss"] - before["rss"]) / 2**20, 1)}
        if "cuda" in after and "cuda" in before:
            out["cuda_mb"] = round((after["cuda"] - before["cuda"]) / 2**20, 1)
        return out


def _cuda_allocated() -> int | None:
    import sys
    torch = sys.modules.get("torch")  # only measured once something imported torch
    if torch is None or not torch.cuda.is_available():
        return None
    return int(torch.cuda.memory_allocated())
