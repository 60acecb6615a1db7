"""Where each module runs: one place decides device and dtype, and measures what a load cost."""
from __future__ import annotations

import logging
import sys

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


def memory_mb() -> dict[str, float]:
    """This process's RSS, and CUDA memory once something imported torch, in MiB (torch is never imported here)."""
    out = {"rss_mb": psutil.Process().memory_info().rss / 2**20}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        out["cuda_mb"] = torch.cuda.memory_allocated() / 2**20
    return out


def memory_added(before: dict[str, float]) -> dict[str, float]:
    """What was added since ``before`` (a :func:`memory_mb`), per measure that both have."""
    return {key: round(now - before[key], 1) for key, now in memory_mb().items() if key in before}
