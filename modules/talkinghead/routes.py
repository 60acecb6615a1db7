"""HTTP routes: the SillyTavern talkinghead contract plus the instance API.

SillyTavern's calls answer plain text exactly as Extras did; every route takes an
optional ``instance_id`` (JSON field or query parameter) and acts on the default
instance without one.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Iterator, Literal

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from greenroom import ApiBlueprint, ApiError
from greenroom.api import binary, text

from . import pose as P
from .animator import HINTS
from .images import ImageError, character_names, load_named, load_upload
from .instance import Instance
from .manager import DEFAULT_ID, InstanceError
from .settings import SettingsError, merge_settings

if TYPE_CHECKING:
    from .module import Talkinghead

log = logging.getLogger("greenroom.talkinghead")
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ID_FIELD = Field(None, pattern=ID_PATTERN, description="Instance to act on; the default instance when omitted.")
PAUSED_KEEPALIVE_SECONDS = 1.0


class InstanceQuery(BaseModel):
    instance_id: str | None = ID_FIELD


class InstanceBody(BaseModel):
    """Only the optional instance id."""
    instance_id: str | None = ID_FIELD


class EmotionBody(BaseModel):
    """SillyTavern's set_emotion body."""
    emotion_name: str = Field(min_length=1, max_length=64, description="One of the emotion names; unknown names mean neutral.")
    instance_id: str | None = ID_FIELD


class FreeformBody(BaseModel):
    """A JSON object of names to values (``{}`` resets), plus an optional instance_id."""
    model_config = ConfigDict(extra="allow")
    instance_id: str | None = ID_FIELD


class OverridesBody(BaseModel):
    """Direct morph control: values stay until replaced (and are smoothed like emotions)."""
    overrides: dict[str, float] = Field(default_factory=dict, description="{morph: value}; see /api/talkinghead/morphs.")
    instance_id: str | None = ID_FIELD


class ModifyOverridesBody(OverridesBody):
    action: Literal["set", "unset"] = Field("set", description="'set' merges the given morphs; 'unset' removes them.")


class HintBody(BaseModel):
    """A high-level pose request that replaces the idle sway for a while."""
    hint: Literal[HINTS] = Field(description="look_at_camera, look_left, look_right, stand_straight or new_sway.")  # type: ignore[valid-type]
    duration: float = Field(5.0, ge=0.1, le=600, description="Seconds the hint holds before idle sway resumes.")
    instance_id: str | None = ID_FIELD


class LoadReply(BaseModel):
    """The instance the load acted on."""
    instance_id: str
    created: bool
    character: str
    mode: str
    size: list[int]


LOAD_FORM = {"multipart/form-data": {"schema": {
    "type": "object",
    "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "Character image: RGBA (transparent background); other sizes are fitted to 512x512."},
        "character": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                      "description": "Instead of file: a character name from assets/characters/ (see /characters)."},
        "new": {"type": "string", "enum": ["true", "false"], "description": "true: create an instance under a new id."},
        "instance_id": {"type": "string", "pattern": ID_PATTERN,
                        "description": "Reload this instance, or create it under this id."},
    }}}}
FEED = {"description": "Endless multipart/x-mixed-replace stream; one image per part",
        "content": {"multipart/x-mixed-replace; boundary=frame": {"schema": {"type": "string", "format": "binary"}}}}
NOT_FOUND = "Unknown instance_id (the message names it)"


def _plain(message: str, inst: Instance | None = None) -> Response:
    response = Response(message, mimetype="text/plain")
    if inst is not None:
        response.headers["X-Instance-Id"] = inst.id
    return response


def _instance_id(body: BaseModel | None = None) -> str | None:
    """``instance_id`` from the JSON body, else the query string (validated like the body field)."""
    value = getattr(body, "instance_id", None) if body is not None else None
    if value is None:
        raw = request.args.get("instance_id")
        if raw is not None:
            value = InstanceQuery.model_validate({"instance_id": raw}).instance_id if raw else None
    return value


def _form_flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ApiError(400, f"{name}: expected true or false, got '{value[:20]}'", field=name)


def build_blueprint(module: "Talkinghead") -> ApiBlueprint:  # noqa: C901 - one function per route below
    bp = ApiBlueprint("talkinghead", __name__)

    def manager():
        if module.manager is None:
            raise ApiError(503, "talkinghead is not loaded")
        return module.manager

    def instance(body: BaseModel | None = None) -> Instance:
        try:
            return manager().get(_instance_id(body))
        except InstanceError as exc:
            raise ApiError(exc.status, str(exc), instance_id=exc.instance_id) from None

    # -- SillyTavern's calls ---------------------------------------------------------------------

    @bp.api("/api/talkinghead/load", methods=["POST"], request_content=LOAD_FORM,
            summary="Load a character into the default instance, a new one (new=true) or a named one",
            responses={200: LoadReply, 400: "Not an image, no alpha channel, bad field", 404: NOT_FOUND,
                       413: "Upload or image too large", 429: "Too many instances"})
    def load():
        s = module.settings
        if request.content_length and request.content_length > s.max_upload_mb * 2**20:
            raise ApiError(413, f"file: upload larger than max_upload_mb ({s.max_upload_mb} MiB)")
        form = request.form
        new = _form_flag(form.get("new", request.args.get("new")), "new")
        raw_id = form.get("instance_id") or request.args.get("instance_id")
        instance_id = InstanceQuery.model_validate({"instance_id": raw_id}).instance_id if raw_id else None
        if new and instance_id:
            raise ApiError(400, "new: give either new=true or an instance_id, not both")
        upload = request.files.get("file")
        name = form.get("character")
        try:
            if upload is not None:
                data = upload.read(int(s.max_upload_mb * 2**20) + 1)
                if len(data) > s.max_upload_mb * 2**20:
                    raise ImageError(f"file: larger than max_upload_mb ({s.max_upload_mb} MiB)", status=413)
                rgba, label = load_upload(data, s.max_image_pixels), (upload.filename or "upload")[:64]
            elif name:
                rgba, label = load_named(name, max_pixels=s.max_image_pixels), name
            else:
                raise ApiError(400, '"file" is required (multipart field file, or a character name)', field="file")
        except ImageError as exc:
            raise ApiError(exc.status, str(exc) if str(exc).startswith(("file", "character")) else f"file: {exc}",
                           field="character" if name and upload is None else "file") from None
        t0 = time.perf_counter()
        character = module.poser.character(rgba, label)
        try:
            inst, created = manager().load(character, instance_id, new)
        except InstanceError as exc:
            raise ApiError(exc.status, str(exc), instance_id=exc.instance_id) from None
        inst.set_paused(False)
        log.info("talkinghead load: instance %s %s, image %dx%d, %.0f ms", inst.id,
                 "created" if created else "reloaded", rgba.shape[1], rgba.shape[0], (time.perf_counter() - t0) * 1000)
        return jsonify({"instance_id": inst.id, "created": created, "character": label, "mode": inst.mode,
                        "size": [rgba.shape[1], rgba.shape[0]]})

    @bp.api("/api/talkinghead/load_emotion_templates", methods=["POST"], body=FreeformBody,
            summary="Emotion templates {emotion: {morph: value}} merged over the defaults; {} resets",
            responses={200: text("OK"), 400: "Bad morph name or value (named)", 404: NOT_FOUND})
    def load_emotion_templates(body: FreeformBody):
        inst = instance(body)
        supplied = dict(body.model_extra or {})
        try:
            parsed = P.parse_templates(supplied)
        except P.PoseError as exc:
            raise ApiError(400, str(exc), field=exc.field, **exc.extra) from None
        templates = {**module.default_templates(), **parsed}
        inst.set_templates(templates)
        return _plain("OK", inst)

    @bp.api("/api/talkinghead/load_animator_settings", methods=["POST"], body=FreeformBody,
            summary="Animator settings merged over the defaults (unknown keys ignored with a warning); {} resets",
            responses={200: text("OK, plus warnings about ignored keys"), 400: "Bad value (the key is named)",
                       404: NOT_FOUND})
    def load_animator_settings(body: FreeformBody):
        inst = instance(body)
        try:
            settings, warnings = merge_settings(module.animator_defaults(), dict(body.model_extra or {}))
        except SettingsError as exc:
            raise ApiError(400, str(exc), field=exc.field, **{k: v for k, v in exc.extra.items() if v is not None}) from None
        inst.apply_settings(settings)
        if warnings:
            log.warning("talkinghead %s: %s", inst.id, "; ".join(warnings))
            return _plain("OK; " + "; ".join(warnings), inst)
        return _plain("OK", inst)

    @bp.api("/api/talkinghead/set_emotion", methods=["POST"], body=EmotionBody,
            summary="Show an emotion; an unknown name falls back to neutral (200)",
            responses={200: text("emotion set to <name>"), 404: NOT_FOUND})
    def set_emotion(body: EmotionBody):
        inst = instance(body)
        chosen = inst.animator.set_emotion(body.emotion_name)
        if chosen != body.emotion_name:
            log.info("talkinghead %s: unknown emotion requested; using %s", inst.id, chosen)
        return _plain(f"emotion set to {chosen}", inst)

    @bp.api("/api/talkinghead/start_talking", methods=["GET", "POST"], query=InstanceQuery,
            summary="Start the no-audio talking animation", responses={200: text("talking started"), 404: NOT_FOUND})
    def start_talking(query: InstanceQuery):
        inst = instance()
        inst.animator.start_talking()
        return _plain("talking started", inst)

    @bp.api("/api/talkinghead/stop_talking", methods=["GET", "POST"], query=InstanceQuery,
            summary="Stop the talking animation", responses={200: text("talking stopped"), 404: NOT_FOUND})
    def stop_talking(query: InstanceQuery):
        inst = instance()
        inst.animator.stop_talking()
        return _plain("talking stopped", inst)

    @bp.api("/api/talkinghead/unload", methods=["GET", "POST"], query=InstanceQuery,
            summary="GET without id pauses the default instance (SillyTavern); with an id, or POST, deletes it",
            responses={200: text("animation paused / instance deleted"), 404: NOT_FOUND})
    def unload(query: InstanceQuery):
        body_id = None
        if request.method == "POST":
            from greenroom import json_body
            data = json_body({})
            body_id = InstanceBody.model_validate(data if isinstance(data, dict) else {}).instance_id
        instance_id = body_id or _instance_id()
        if request.method == "GET" and instance_id is None:
            inst = manager().find(None)
            if inst is not None:
                inst.set_paused(True)
                inst.touch()
            return _plain("animation paused", inst)
        if not manager().delete(instance_id):
            if instance_id is None:
                return _plain("no default instance")
            raise ApiError(404, f"unknown instance_id '{instance_id}'", instance_id=instance_id)
        return _plain(f"instance {instance_id or DEFAULT_ID} deleted")

    @bp.api("/api/talkinghead/result_feed", query=InstanceQuery, auth=False,
            summary="The live video: multipart/x-mixed-replace; boundary=frame, paced at target_fps (no API key)",
            responses={200: FEED, 404: NOT_FOUND, 503: "Too many open streams"})
    def result_feed(query: InstanceQuery):
        instance_id = _instance_id()
        if instance_id is not None:
            instance()  # 404 now, before the stream starts
        chunks = _feed(module, instance_id)
        return Response(module.host.stream(chunks), mimetype="multipart/x-mixed-replace; boundary=frame",
                        headers={"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"})

    # -- the instance API ------------------------------------------------------------------------

    @bp.api("/api/talkinghead/start", methods=["POST"], body=InstanceBody, summary="Resume a paused instance",
            responses={200: text("animation started"), 404: NOT_FOUND})
    def start(body: InstanceBody):
        inst = instance(body)
        inst.set_paused(False)
        return _plain("animation started", inst)

    @bp.api("/api/talkinghead/stop", methods=["POST"], body=InstanceBody,
            summary="Pause an instance (feeds keep the last frame, re-sent once a second)",
            responses={200: text("animation paused"), 404: NOT_FOUND})
    def stop(body: InstanceBody):
        inst = instance(body)
        inst.set_paused(True)
        return _plain("animation paused", inst)

    @bp.api("/api/talkinghead/set_overrides", methods=["POST"], body=OverridesBody,
            summary="Replace all direct morph overrides", responses={200: text("OK"), 400: "Unknown morph or value out of range", 404: NOT_FOUND})
    def set_overrides(body: OverridesBody):
        inst = instance(body)
        inst.animator.set_overrides(_checked(body.overrides))
        return _plain("OK", inst)

    @bp.api("/api/talkinghead/modify_overrides", methods=["POST"], body=ModifyOverridesBody,
            summary="Set or unset some morph overrides", responses={200: text("OK"), 400: "Unknown morph or value out of range", 404: NOT_FOUND})
    def modify_overrides(body: ModifyOverridesBody):
        inst = instance(body)
        overrides = _checked(body.overrides) if body.action == "set" else _known(body.overrides)
        inst.animator.modify_overrides(body.action, overrides)
        return _plain("OK", inst)

    @bp.api("/api/talkinghead/pose_hint", methods=["POST"], body=HintBody,
            summary="Look at the camera / left / right, stand straight, or pick a new sway pose",
            responses={200: text("OK"), 404: NOT_FOUND})
    def pose_hint(body: HintBody):
        inst = instance(body)
        inst.animator.hint(body.hint, body.duration, time.monotonic())
        return _plain("OK", inst)

    @bp.api("/api/talkinghead/status", query=InstanceQuery,
            summary="Per-instance mode, cache fill, fps and per-stage times; all instances without an id",
            responses={200: {"description": "Status JSON"}, 404: NOT_FOUND})
    def status(query: InstanceQuery):
        instance_id = _instance_id()
        if instance_id is not None:
            return jsonify(instance().status())
        return jsonify({**module.status(), "instances": [i.status() for i in manager().all()]})

    @bp.api("/api/talkinghead/frame", query=InstanceQuery,
            summary="The latest frame as a single image (waits up to 10 s for the first one)",
            responses={200: binary("image/png", "image/webp", "image/qoi", "image/x-tga"), 404: NOT_FOUND,
                       503: "No frame yet"})
    def frame(query: InstanceQuery):
        inst = instance()
        encoded = inst.wait_frame(-1, 10.0)
        if encoded is None:
            raise ApiError(503, "no frame rendered yet; retry shortly", headers={"Retry-After": "1"})
        return Response(encoded.data, mimetype=encoded.mimetype, headers={"X-Frame-Seq": str(encoded.seq),
                                                                          "X-Instance-Id": inst.id})

    @bp.api("/api/talkinghead/instances", summary="Ids of the live instances")
    def instances():
        return jsonify({"instances": [{"instance_id": i.id, "character": i.character.name, "mode": i.mode,
                                       "feeds": i.feeds, "paused": i.paused} for i in manager().all()],
                        "max_instances": module.settings.max_instances})

    @bp.api("/api/talkinghead/animator_settings", query=InstanceQuery,
            summary="The effective animator settings of an instance", responses={200: "Settings JSON", 404: NOT_FOUND})
    def animator_settings(query: InstanceQuery):
        return jsonify(instance().settings.model_dump(mode="json"))

    @bp.api("/api/talkinghead/emotions", query=InstanceQuery, summary="Emotion names and templates of an instance",
            responses={200: "Emotions JSON", 404: NOT_FOUND})
    def emotions(query: InstanceQuery):
        inst = instance()
        return jsonify({"emotions": {name: P.to_dict(vec, nonzero=True) for name, vec in inst.templates.items()},
                        "current": inst.animator.emotion})

    @bp.api("/api/talkinghead/morphs", summary="The 45 THA3 morphs with their ranges")
    def morphs():
        return jsonify({"morphs": P.morph_table()})

    @bp.api("/api/talkinghead/characters", summary="Characters shipped in assets/characters (load them by name)")
    def characters():
        return jsonify({"characters": character_names()})

    @bp.api("/api/talkinghead/filters", summary="Every postprocessor filter with its parameters (for GUIs)")
    def filters():
        from greenroom_modules.postprocessor import describe_filters
        return jsonify({"filters": describe_filters()})

    # -- pose editor (single poses, named emotion sets): modules/talkinghead/pose_routes.py ------
    from .pose_routes import add_pose_routes
    add_pose_routes(bp, module)

    # -- lip-sync (speak through tts, mouth follows the audio): modules/talkinghead/speech_routes.py --
    from .speech_routes import add_speech_routes
    add_speech_routes(bp, module, instance)

    return bp


def _known(values: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in values if k not in P.INDEX]
    if unknown:
        raise ApiError(400, f"overrides: unknown morph '{unknown[0]}'", field=unknown[0], valid_morphs=list(P.MORPHS))
    return values


def _checked(values: dict[str, float]) -> dict[str, float]:
    try:
        return P.check_morphs(values)
    except P.PoseError as exc:
        raise ApiError(400, str(exc), field=exc.field, **exc.extra) from None


def _part(data: bytes, mimetype: str) -> bytes:
    return b"".join((b"--frame\r\nContent-Type: ", mimetype.encode(), b"\r\nContent-Length: ",
                     str(len(data)).encode(), b"\r\n\r\n", data, b"\r\n"))


def _feed(module: "Talkinghead", instance_id: str | None) -> Iterator[bytes]:
    """Send the latest frame every 1/target_fps s (once a second while paused); never queue, never burst."""
    host = module.host
    inst = None
    while inst is None:  # SillyTavern may open the feed before its first load: send nothing until then
        if host.stopping.is_set() or module.manager is None:
            return
        inst = module.manager.find(instance_id)
        if inst is None:
            if instance_id is not None:
                return
            host.stopping.wait(0.1)
    inst.feeds += 1
    try:
        next_send = time.monotonic()
        while not inst.closed.is_set() and not host.stopping.is_set():
            now = time.monotonic()
            if now < next_send:
                inst.closed.wait(min(next_send - now, 0.1))
                continue
            encoded = inst.latest()
            if encoded is None:
                inst.wait_frame(-1, 0.1)
                continue
            period = PAUSED_KEEPALIVE_SECONDS if inst.paused else 1.0 / inst.settings.target_fps
            yield _part(encoded.data, encoded.mimetype)
            inst.frames_sent += 1
            inst.touch()
            next_send += period
            if next_send < time.monotonic():  # a slow client: drop the missed ticks, never burst
                next_send = time.monotonic()
    finally:
        inst.feeds -= 1
