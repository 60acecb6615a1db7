"""Module settings (plugins.toml) and per-instance animator settings, with their merge rules."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from greenroom import ComputeSettings, load_time_field
from greenroom.errors import BadRequest
from greenroom.paths import assets_dir, cache_dir, find

from .pose import MOUTH_OPEN_MORPHS, ROTATION_MORPHS

log = logging.getLogger("greenroom.talkinghead")

ASSETS = assets_dir()   # the shipped assets; the user's own files are looked up first (greenroom.paths)
FORMATS = ("PNG", "WEBP", "QOI", "TGA")
Mode = Literal["auto", "full", "low_compute"]


def _filters_schema(schema: dict[str, Any]) -> None:
    """Put the postprocessor's filter catalogue into the schema so GUIs need no other call."""
    try:
        from greenroom_modules.postprocessor import describe_filters
        schema["x-filters"] = describe_filters()
    except Exception as exc:  # the schema must never fail because of the optional catalogue
        schema["x-filters-error"] = f"{type(exc).__name__}: {exc}"


def _upscale_methods() -> tuple[str, ...]:
    try:
        from greenroom_modules.postprocessor import UPSCALE_METHODS
        return tuple(UPSCALE_METHODS)
    except Exception:
        return ("bilinear", "bicubic", "lanczos")


def _default_chain() -> list:
    try:
        from greenroom_modules.postprocessor import DEFAULT_CHAIN
        return json.loads(json.dumps(DEFAULT_CHAIN))
    except Exception:
        return []


class AnimatorSettings(BaseModel):
    """How one avatar instance moves, looks and is encoded. Times are seconds of wall-clock time."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    target_fps: int = Field(25, ge=1, le=60, description="Frames per second sent to each feed (and rendered, when the machine keeps up).")
    mode: Literal["default", "auto", "full", "low_compute"] = Field(
        "default", description="Renderer: 'full' poses every frame with THA3; 'low_compute' blends cached poses "
                               "(real time on a CPU); 'auto' picks by measured speed; 'default' follows the module setting.")
    pose_interpolator_step: float = Field(0.3, gt=0, le=1, description="Fraction of the way to the target pose covered per 1/25 s.")
    blink_interval_min: float = Field(2.0, ge=0, le=60, description="Shortest gap between blinks.")
    blink_interval_max: float = Field(5.0, ge=0, le=60, description="Longest gap before a blink becomes likely.")
    blink_probability: float = Field(0.03, ge=0, le=1, description="Chance of a blink per 1/25 s once the minimum gap has passed.")
    blink_confusion_duration: float = Field(10.0, ge=0, le=120, description="After switching to 'confusion', blink rapidly for this long.")
    talking_fps: float = Field(12.0, gt=0, le=30, description="New random mouth shapes per second while talking.")
    talking_morph: Literal[MOUTH_OPEN_MORPHS] = Field("mouth_aaa_index", description="Mouth morph the talking animation drives.")  # type: ignore[valid-type]
    lipsync_latency: float = Field(0.1, ge=-2.0, le=2.0, description="Lip-sync (/api/talkinghead/speak): show each mouth shape this many seconds before its sound plays, making up for the video pipeline's delay (negative: later).")
    sway_morphs: list[Literal[ROTATION_MORPHS]] = Field(list(ROTATION_MORPHS), max_length=5, description="Rotation morphs that sway while idle.")  # type: ignore[valid-type]
    sway_interval_min: float = Field(5.0, ge=0.5, le=120, description="Shortest time a sway pose is held.")
    sway_interval_max: float = Field(10.0, ge=0.5, le=120, description="Longest time a sway pose is held.")
    sway_macro_strength: float = Field(0.6, ge=0, le=1, description="Largest random sway away from centre (1.0 is about 15 degrees).")
    sway_micro_strength: float = Field(0.02, ge=0, le=0.2, description="Small random jitter on the sway (full mode only).")
    breathing_cycle_duration: float = Field(4.0, gt=0.5, le=30, description="Length of one breath.")
    crop_left: float = Field(0.0, ge=0, le=0.9, description="Crop from the left edge (EX units: the full width is 2.0).")
    crop_right: float = Field(0.0, ge=0, le=0.9, description="Crop from the right edge.")
    crop_top: float = Field(0.0, ge=0, le=0.9, description="Crop from the top edge.")
    crop_bottom: float = Field(0.0, ge=0, le=0.9, description="Crop from the bottom edge.")
    upscale: float = Field(1.0, ge=1.0, le=4.0, description="Output scale factor applied after cropping.")
    upscale_method: str = Field("bicubic", description="Upscaling method; see the postprocessor's UPSCALE_METHODS.",
                                json_schema_extra={"enum": list(_upscale_methods())})
    postprocess_before_upscale: bool = Field(False, description="Run the postprocessor chain before upscaling (cheaper) instead of after.")
    postprocessor_chain: list = Field(default_factory=_default_chain, json_schema_extra=_filters_schema,
                                      description="[[filter_name, {param: value}], ...] applied to every frame in linear light; "
                                                  "x-filters lists the filters and their parameters.")
    format: Literal[FORMATS] = Field("PNG", description="Frame encoding of the feed: PNG (fast settings), WEBP (lossless), QOI or TGA.")  # type: ignore[valid-type]

    @field_validator("upscale_method")
    @classmethod
    def _method(cls, value: str) -> str:
        methods = _upscale_methods()
        if value not in methods:
            raise ValueError(f"unknown upscale method '{value}'; choose one of {', '.join(methods)}")
        return value

    @field_validator("postprocessor_chain")
    @classmethod
    def _chain(cls, value: list) -> list:
        from greenroom_modules.postprocessor import ChainError, validate_chain
        try:
            validate_chain(value)
        except ChainError as exc:
            raise ChainProblem(exc) from None
        return value


class ChainProblem(ValueError):
    """A postprocessor chain error carried through pydantic with its filter and parameter."""

    def __init__(self, exc: Exception) -> None:
        super().__init__(str(exc))
        self.filter = getattr(exc, "filter", None)
        self.param = getattr(exc, "param", None)


class SettingsError(BadRequest, ValueError):
    """A rejected animator setting: 400, ``field`` names the key (``extra`` the filter and parameter, if any)."""

    def __init__(self, message: str, field: str, **extra: Any) -> None:
        super().__init__(message, field=field, **{k: v for k, v in extra.items() if v is not None})
        self.field = field


def server_defaults(path: Path | None = None) -> dict[str, Any]:
    """Built-in defaults overlaid with ``settings/animator.json`` (the operator's defaults) from the user data
    folder, else the shipped one."""
    base = AnimatorSettings().model_dump()
    path = path or find("settings/animator.json")
    if path is None:
        return base
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.error("%s is unusable (%s); using built-in animator defaults", path, exc)
        return base
    merged, warnings = merge_settings(base, data)
    for warning in warnings:
        log.warning("%s: %s", path, warning)
    return merged.model_dump()


def merge_settings(defaults: dict[str, Any], changes: dict[str, Any]) -> tuple[AnimatorSettings, list[str]]:
    """``changes`` over ``defaults``: unknown keys are dropped with a warning, bad values rejected by name.

    Old (SillyTavern-Extras) filter names in the chain are translated and unknown filters or parameters
    dropped, each with a warning, so an old ``_animator.json`` still loads.
    """
    from greenroom_modules.postprocessor.legacy import translate_chain
    known = AnimatorSettings.model_fields
    warnings = [f"unknown setting '{k}' ignored" for k in changes if k not in known]
    if "postprocessor_chain" in changes:
        chain, notes = translate_chain(changes["postprocessor_chain"])
        changes, warnings = {**changes, "postprocessor_chain": chain}, warnings + notes
    merged = {**defaults, **{k: v for k, v in changes.items() if k in known}}
    for key in ("target_fps",):  # EX sends floats for ints; accept whole numbers
        if isinstance(merged.get(key), float) and float(merged[key]).is_integer():
            merged[key] = int(merged[key])
    try:
        return AnimatorSettings.model_validate(merged), warnings
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else "settings"
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, ChainProblem):
            raise SettingsError(f"postprocessor_chain: {cause}", field="postprocessor_chain",
                                filter=cause.filter, param=cause.param) from None
        raise SettingsError(f"{key}: {err['msg']} (got {err.get('input')!r})", field=key) from None


class TalkingheadSettings(ComputeSettings):
    """The [modules.talkinghead] table."""

    model: Literal["separable_float", "separable_half", "standard_float", "standard_half"] = load_time_field(
        "separable_float", "THA3 variant. Only separable_float ships with the tha3 package; the others need "
                           "weights_dir. On CUDA with float16, separable_half is used when its weights exist.")
    weights_dir: str = load_time_field(
        "", "Folder holding <model>/{eyebrow_decomposer,eyebrow_morphing_combiner,face_morpher,"
            "two_algo_face_body_rotator,editor}.pt; empty uses the weights inside the tha3 package.")
    mode: Mode = Field("auto", description="Default renderer for new instances: 'auto' uses full posing when one "
                                           "pose fits the frame budget (e.g. on a GPU), else low_compute.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = load_time_field(
        "auto", "THA3's precision. 'auto': float16 on a CUDA device with fast half arithmetic (compute capability "
                "7.0+), float32 elsewhere; a CPU always runs float32. float16 uses separable_half's weights when "
                "weights_dir has them, else the float weights cast to half.")
    compile: bool = load_time_field(False, "torch.compile the THA3 networks for full posing (about 2x faster on a "
                                           "CPU; the first start compiles for a minute).")
    compile_cache_dir: str = load_time_field("", "TorchInductor cache folder for compile (empty: torch's default).")
    cuda_graphs: bool = load_time_field(False, "Full posing on CUDA: replay a CUDA graph per batch size in "
                                               "fixed_batch_sizes (less launch overhead; each size is captured on "
                                               "first use). Ignored on a CPU.")
    fixed_batch_sizes: list[int] = load_time_field(
        [1, 2, 4, 8], "With compile or cuda_graphs, batches are padded up to the next of these sizes so that only "
                      "these shapes are ever compiled or captured (a larger batch runs unpadded).",
        min_length=1, max_length=8)
    max_batch: int = Field(8, ge=1, le=64, description="Full mode: the most frames (of any instances and "
                                                        "characters) posed in one THA3 forward pass; 1 poses one "
                                                        "frame at a time.")
    batch_wait_ms: float = Field(4.0, ge=0, le=100, description="Full mode: how long a frame may wait for "
                                                                "others to fill its batch (a lone instance never "
                                                                "waits; on a slow device at least a tenth of a "
                                                                "forward pass).")
    admission: bool = Field(True, description="On a GPU, refuse a new full-mode instance (429) when the frame "
                                              "rates of the full-mode instances would exceed what the poser "
                                              "sustains (measured at start-up and while running).")
    cache_dir: str = load_time_field("auto", "On-disk pose cache of the low_compute mode, keyed by character image "
                                             "and pose. 'auto': talkinghead/ in the user cache folder "
                                             "($GREENROOM_DATA_DIR/cache, else the platform's); \"\" disables it.",
                                     validate_default=True)
    cache_memory_mb: int = Field(1024, ge=64, le=65536, description="Memory the low_compute pose cache may use.")
    cache_disk_mb: int = Field(2048, ge=0, le=1048576, description="Disk the pose cache may use (0 disables it).")
    background_nice: int = load_time_field(5, "Nice value of the low_compute mode's background renderer "
                                              "thread: above 0 it yields the CPU to the live feeds.", ge=0, le=19)
    background_idle: bool = load_time_field(False, "The background renderer runs optional work (other emotions, "
                                                   "new sway poses) in Linux's SCHED_IDLE class, with only CPU time "
                                                   "the live feeds leave, and what the picture waits for at "
                                                   "background_nice. true: everything in SCHED_IDLE (on a machine "
                                                   "busy with other programs the cache then fills slowly).")
    precompute_emotions: bool = Field(True, description="In low_compute mode, render every emotion in the "
                                                        "background after a character loads.")
    max_instances: int = Field(8, ge=1, le=256, description="Most avatar instances at once (429 beyond).")
    idle_timeout_minutes: float = Field(30.0, gt=0, le=10080, description="Delete an instance with no open "
                                                                          "feed and no calls for this long.")
    max_upload_mb: float = Field(20.0, gt=0, le=500, description="Largest character image upload (413 above).")
    max_image_pixels: int = Field(16_000_000, ge=262144, le=200_000_000, description="Largest decoded image "
                                                                                     "size in pixels.")
    animator: AnimatorSettings = Field(default_factory=AnimatorSettings, description="Defaults for new "
                                       "instances, before settings/animator.json and client settings.")

    @field_validator("fixed_batch_sizes")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if any(size < 1 or size > 64 for size in value):
            raise ValueError("batch sizes must be 1-64")
        return sorted(set(value))

    @field_validator("cache_dir")
    @classmethod
    def _cache_dir(cls, value: str) -> str:
        """'auto' becomes the folder, read when the settings load (so GREENROOM_DATA_DIR applies)."""
        return str(cache_dir() / "talkinghead") if value == "auto" else value
