"""HTTP routes: the SillyTavern talkinghead contract plus the instance API.

SillyTavern's calls answer plain text exactly as Extras did; every route takes an
optional ``instance_id`` (JSON field or query parameter, see :mod:`.request`) and acts
on the default instance without one. Views take the module first (:mod:`greenroom.views`);
the pose editor's and the lip-sync routes live in ``pose_routes.py`` and ``speech_routes.py``.
"""
from __future__ import annotations

import io
import logging
import time
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np
from flask import Response, jsonify, request
from PIL import Image

from greenroom import ApiError
from greenroom.api import binary, json_body, text
from greenroom.views import Routes

from . import encoding
from . import pose as P
from . import pose_routes, speech_routes
from .images import character_names, load_named, load_upload, within_limit
from .instance import PAUSED_KEEPALIVE_SECONDS, new_frames
from .manager import DEFAULT_ID
from .request import (NOT_FOUND, InstanceQuery, concerns, instance_from_request, loaded_manager,
                      name_instance, parse_instance_id, plain, refuse_new_while_draining, requested_instance_id)
from .schemas import (FEED, LOAD_FORM, EmotionBody, FeedQuery, FreeformBody, HintBody, InstanceBody, LoadReply,
                      ModifyOverridesBody, OverridesBody)
from .settings import merge_settings

if TYPE_CHECKING:
    from .module import Talkinghead
    from .settings import TalkingheadSettings

log = logging.getLogger("greenroom.talkinghead")

routes = Routes(include=(pose_routes.routes, speech_routes.routes))
routes.hook("after_request")(name_instance)  # X-Instance-Id on replies: load balancers stick by it


# -- SillyTavern's calls -------------------------------------------------------------------------

@routes.api("/api/talkinghead/load", methods=["POST"], request_content=LOAD_FORM,
            summary="Load a character into the default instance, a new one (new=true) or a named one",
            responses={200: LoadReply, 400: "Not an image, no alpha channel, bad field", 404: NOT_FOUND,
                       413: "Upload or image too large", 429: "Too many instances"})
def load(module: "Talkinghead"):
    s = module.settings
    if request.content_length and request.content_length > s.max_upload_mb * 2**20:
        raise ApiError(413, f"file: upload larger than max_upload_mb ({s.max_upload_mb} MiB)")
    new, instance_id = _load_target()
    refuse_new_while_draining(module, new, instance_id)
    rgba, label = _posted_image(s)
    t0 = time.perf_counter()
    character = module.poser.character(rgba, label)
    inst, created = loaded_manager(module).load(character, instance_id, new)
    concerns(inst.id)
    inst.set_paused(False)
    log.info("talkinghead load: instance %s %s, image %dx%d, %.0f ms", inst.id,
             "created" if created else "reloaded", rgba.shape[1], rgba.shape[0], (time.perf_counter() - t0) * 1000)
    return jsonify({"instance_id": inst.id, "created": created, "character": label, "mode": inst.mode,
                    "size": [rgba.shape[1], rgba.shape[0]]})


@routes.api("/api/talkinghead/load_emotion_templates", methods=["POST"], body=FreeformBody,
            summary="Emotion templates {emotion: {morph: value}} merged over the defaults; {} resets",
            responses={200: text("OK"), 400: "Bad morph name or value (named)", 404: NOT_FOUND})
def load_emotion_templates(module: "Talkinghead", body: FreeformBody):
    inst = instance_from_request(module, body)
    inst.set_templates({**module.default_templates(), **P.parse_templates(dict(body.model_extra or {}))})
    return plain("OK", inst)


@routes.api("/api/talkinghead/load_animator_settings", methods=["POST"], body=FreeformBody,
            summary="Animator settings merged over the defaults (unknown keys ignored with a warning); {} resets",
            responses={200: text("OK, plus warnings about ignored keys"), 400: "Bad value (the key is named)",
                       404: NOT_FOUND})
def load_animator_settings(module: "Talkinghead", body: FreeformBody):
    inst = instance_from_request(module, body)
    settings, warnings = merge_settings(module.animator_defaults(), dict(body.model_extra or {}))
    inst.apply_settings(settings)
    if warnings:
        log.warning("talkinghead %s: %s", inst.id, "; ".join(warnings))
        return plain("OK; " + "; ".join(warnings), inst)
    return plain("OK", inst)


@routes.api("/api/talkinghead/set_emotion", methods=["POST"], body=EmotionBody,
            summary="Show an emotion; an unknown name falls back to neutral (200)",
            responses={200: text("emotion set to <name>"), 404: NOT_FOUND})
def set_emotion(module: "Talkinghead", body: EmotionBody):
    inst = instance_from_request(module, body)
    chosen = inst.animator.set_emotion(body.emotion_name)
    if chosen != body.emotion_name:
        log.info("talkinghead %s: unknown emotion requested; using %s", inst.id, chosen)
    return plain(f"emotion set to {chosen}", inst)


@routes.api("/api/talkinghead/start_talking", methods=["GET", "POST"], query=InstanceQuery,
            summary="Start the no-audio talking animation", responses={200: text("talking started"), 404: NOT_FOUND})
def start_talking(module: "Talkinghead", query: InstanceQuery):
    inst = instance_from_request(module)
    inst.animator.start_talking()
    return plain("talking started", inst)


@routes.api("/api/talkinghead/stop_talking", methods=["GET", "POST"], query=InstanceQuery,
            summary="Stop the talking animation", responses={200: text("talking stopped"), 404: NOT_FOUND})
def stop_talking(module: "Talkinghead", query: InstanceQuery):
    inst = instance_from_request(module)
    inst.animator.stop_talking()
    return plain("talking stopped", inst)


@routes.api("/api/talkinghead/unload", methods=["GET", "POST"], query=InstanceQuery,
            summary="GET without id pauses the default instance (SillyTavern); with an id, or POST, deletes it",
            responses={200: text("animation paused / instance deleted"), 404: NOT_FOUND})
def unload(module: "Talkinghead", query: InstanceQuery):
    body = InstanceBody.model_validate(_json_object()) if request.method == "POST" else None
    instance_id = requested_instance_id(body)
    concerns(instance_id)
    manager = loaded_manager(module)
    if request.method == "GET" and instance_id is None:
        inst = manager.find(None)
        if inst is not None:
            inst.set_paused(True)
            inst.touch()
        return plain("animation paused", inst)
    if not manager.delete(instance_id):
        if instance_id is None:
            return plain("no default instance")
        raise ApiError(404, f"unknown instance_id '{instance_id}'", instance_id=instance_id)
    return plain(f"instance {instance_id or DEFAULT_ID} deleted")


@routes.api("/api/talkinghead/result_feed", query=FeedQuery, auth=False,
            summary="The live video: multipart/x-mixed-replace; boundary=frame, each new frame once (no API key)",
            responses={200: FEED, 400: "Bad instance_id or format", 404: NOT_FOUND, 503: "Too many open streams"})
def result_feed(module: "Talkinghead", query: FeedQuery):
    instance_id = requested_instance_id()
    concerns(instance_id)
    if instance_id is not None:
        instance_from_request(module)  # 404 now, before the stream starts
    return Response(module.context.stream(_feed(module, instance_id, query.format)),
                    mimetype="multipart/x-mixed-replace; boundary=frame",
                    headers={"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"})


# -- the instance API ----------------------------------------------------------------------------

@routes.api("/api/talkinghead/start", methods=["POST"], body=InstanceBody, summary="Resume a paused instance",
            responses={200: text("animation started"), 404: NOT_FOUND})
def start(module: "Talkinghead", body: InstanceBody):
    inst = instance_from_request(module, body)
    inst.set_paused(False)
    return plain("animation started", inst)


@routes.api("/api/talkinghead/stop", methods=["POST"], body=InstanceBody,
            summary="Pause an instance (feeds keep the last frame, re-sent once a second)",
            responses={200: text("animation paused"), 404: NOT_FOUND})
def stop(module: "Talkinghead", body: InstanceBody):
    inst = instance_from_request(module, body)
    inst.set_paused(True)
    return plain("animation paused", inst)


@routes.api("/api/talkinghead/set_overrides", methods=["POST"], body=OverridesBody,
            summary="Replace all direct morph overrides",
            responses={200: text("OK"), 400: "Unknown morph or value out of range", 404: NOT_FOUND})
def set_overrides(module: "Talkinghead", body: OverridesBody):
    inst = instance_from_request(module, body)
    inst.animator.set_overrides(P.check_morphs(body.overrides))
    return plain("OK", inst)


@routes.api("/api/talkinghead/modify_overrides", methods=["POST"], body=ModifyOverridesBody,
            summary="Set or unset some morph overrides",
            responses={200: text("OK"), 400: "Unknown morph or value out of range", 404: NOT_FOUND})
def modify_overrides(module: "Talkinghead", body: ModifyOverridesBody):
    inst = instance_from_request(module, body)
    overrides = P.check_morphs(body.overrides) if body.action == "set" else _known(body.overrides)
    inst.animator.modify_overrides(body.action, overrides)
    return plain("OK", inst)


@routes.api("/api/talkinghead/pose_hint", methods=["POST"], body=HintBody,
            summary="Look at the camera / left / right, stand straight, or pick a new sway pose",
            responses={200: text("OK"), 404: NOT_FOUND})
def pose_hint(module: "Talkinghead", body: HintBody):
    inst = instance_from_request(module, body)
    inst.animator.hint(body.hint, body.duration, time.monotonic())
    return plain("OK", inst)


@routes.api("/api/talkinghead/status", query=InstanceQuery,
            summary="Per-instance mode, cache fill, fps and per-stage times; all instances without an id",
            responses={200: {"description": "Status JSON"}, 404: NOT_FOUND})
def status(module: "Talkinghead", query: InstanceQuery):
    if requested_instance_id() is not None:
        return jsonify(instance_from_request(module).status())
    return jsonify({**module.status(), "instances": [i.status() for i in loaded_manager(module).all()]})


@routes.api("/api/talkinghead/frame", query=InstanceQuery,
            summary="The latest frame as a single image (waits up to 10 s for the first one)",
            responses={200: binary("image/png", "image/webp", "image/qoi", "image/x-tga"), 404: NOT_FOUND,
                       503: "No frame yet"})
def frame(module: "Talkinghead", query: InstanceQuery):
    inst = instance_from_request(module)
    encoded = inst.wait_frame(-1, 10.0)
    if encoded is None:
        raise ApiError(503, "no frame rendered yet; retry shortly", headers={"Retry-After": "1"})
    fmt = inst.settings.format
    return Response(encoded.data(fmt), mimetype=encoding.MIMETYPES[fmt],
                    headers={"X-Frame-Seq": str(encoded.seq), "X-Instance-Id": inst.id})


@routes.api("/api/talkinghead/instances", summary="Ids of the live instances")
def instances(module: "Talkinghead"):
    return jsonify({"instances": [{"instance_id": i.id, "character": i.character.name, "mode": i.mode,
                                   "feeds": i.feeds, "paused": i.paused} for i in loaded_manager(module).all()],
                    "max_instances": module.settings.max_instances})


@routes.api("/api/talkinghead/animator_settings", query=InstanceQuery,
            summary="The effective animator settings of an instance", responses={200: "Settings JSON", 404: NOT_FOUND})
def animator_settings(module: "Talkinghead", query: InstanceQuery):
    return jsonify(instance_from_request(module).settings.model_dump(mode="json"))


@routes.api("/api/talkinghead/emotions", query=InstanceQuery, summary="Emotion names and templates of an instance",
            responses={200: "Emotions JSON", 404: NOT_FOUND})
def emotions(module: "Talkinghead", query: InstanceQuery):
    inst = instance_from_request(module)
    return jsonify({"emotions": {name: P.to_dict(vec, nonzero=True) for name, vec in inst.templates.items()},
                    "current": inst.animator.emotion})


@routes.api("/api/talkinghead/morphs", summary="The 45 THA3 morphs with their ranges")
def morphs(module: "Talkinghead"):
    return jsonify({"morphs": P.morph_table()})


@routes.api("/api/talkinghead/characters", summary="Characters shipped in assets/characters (load them by name)")
def characters(module: "Talkinghead"):
    return jsonify({"characters": character_names()})


@routes.api("/api/talkinghead/filters", summary="Every postprocessor filter with its parameters (for GUIs)")
def filters(module: "Talkinghead"):
    from greenroom_modules.postprocessor import describe_filters
    return jsonify({"filters": describe_filters()})


# -- helpers -------------------------------------------------------------------------------------

def _load_target() -> tuple[bool, str | None]:
    """``new``, and the instance_id to reload or create (form field, query or header); not both."""
    new = _form_flag(request.form.get("new", request.args.get("new")), "new")
    instance_id = requested_instance_id(InstanceQuery(instance_id=parse_instance_id(request.form.get("instance_id"))))
    if new and instance_id:
        raise ApiError(400, "new: give either new=true or an instance_id, not both")
    return new, instance_id


def _posted_image(s: "TalkingheadSettings") -> tuple[np.ndarray, str]:
    """The RGBA image of the multipart ``file`` field, or of the shipped ``character`` it names; and its label."""
    upload = request.files.get("file")
    name = request.form.get("character")
    if upload is not None:
        data = within_limit(upload.read(int(s.max_upload_mb * 2**20) + 1), s.max_upload_mb)
        return load_upload(data, s.max_image_pixels), (upload.filename or "upload")[:64]
    if name:
        return load_named(name, max_pixels=s.max_image_pixels), name
    raise ApiError(400, '"file" is required (multipart field file, or a character name)', field="file")


def _json_object() -> dict[str, Any]:
    data = json_body({})
    return data if isinstance(data, dict) else {}


def _form_flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise ApiError(400, f"{name}: expected true or false, got '{value[:20]}'", field=name)


def _known(values: dict[str, Any]) -> dict[str, Any]:
    unknown = [k for k in values if k not in P.INDEX]
    if unknown:
        raise ApiError(400, f"overrides: unknown morph '{unknown[0]}'", field=unknown[0], valid_morphs=list(P.MORPHS))
    return values


def _part(data: bytes, mimetype: str, seq: int | None = None) -> bytes:
    """One part of the feed, closed by the next part's boundary line.

    The stream's bytes are the usual ``--frame``, headers, image, CRLF per part; the boundary of the next
    part is written with this one because browsers show a part only once they see the boundary after
    it (otherwise every picture would appear one frame late: a second late for a slow full pose)."""
    headers = b"Content-Type: " + mimetype.encode() + b"\r\nContent-Length: " + str(len(data)).encode()
    if seq is not None:
        headers += b"\r\nX-Frame-Seq: " + str(seq).encode()
    return b"".join((headers, b"\r\n\r\n", data, b"\r\n--frame\r\n"))


def _transparent_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (1, 1)).save(buf, "PNG")
    return buf.getvalue()


WAITING_FRAME = _transparent_png()
"""What a feed opened before the first load shows, once a second: a write is how a departed client is
noticed (its stream slot freed); a feed that wrote nothing held its slot forever."""


def _feed(module: "Talkinghead", instance_id: str | None, fmt: str | None) -> Iterator[bytes]:
    """Send each new frame once, as soon as it is finished (paced by the frames, not by a clock of its
    own); re-send the last one once a second while none comes (paused, or a slow full pose). Never
    queue, never burst: a slow client gets the latest frame and skips the rest. ``fmt`` None: the
    instance's ``format`` setting."""
    stopping = module.context.stopping
    inst = None
    keepalive = 0.0
    opening = b"--frame\r\n"  # the first part's boundary (each part carries the next one's)
    while inst is None:  # SillyTavern may open the feed before its first load: a transparent frame until then
        if stopping.is_set() or module.manager is None:
            return
        inst = module.manager.find(instance_id)
        if inst is None:
            if instance_id is not None:
                return
            if time.monotonic() >= keepalive:
                yield opening + _part(WAITING_FRAME, "image/png")
                opening = b""
                keepalive = time.monotonic() + PAUSED_KEEPALIVE_SECONDS
            stopping.wait(0.1)
    for encoded in new_frames(inst, stopping):
        chosen = fmt or inst.settings.format
        yield opening + _part(encoded.data(chosen), encoding.MIMETYPES[chosen], encoded.seq)
        opening = b""
