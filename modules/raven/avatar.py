"""Raven's avatar API (``/api/avatar/*`` of ``raven.client.api``) on talkinghead's :class:`Avatars` service.

Raven's shapes: the instance id travels in the JSON body (``result_feed``: the query), replies are the
plain text ``OK`` (``load``: ``{"instance_id"}``), and every feed part carries ``X-Crop``, ``X-Full-Size``
and ``X-Server-Stats``, without which Raven's renderer stops. Every reply about an instance also names it
in ``X-Instance-Id``, as talkinghead's do, so that a load balancer keeps its calls on its worker.
Differences that Raven's clients cannot see are talkinghead's: ``load`` always makes a new instance,
``unload`` answers 200 for an unknown id.

Raven's add-on cels (``blush1``, ``tears2``...) and animefx are not rendered: cel files sent with
``load``/``reload`` are ignored, and names in templates and overrides that are no THA3 morph are dropped,
as Raven-server itself drops keys it does not know. The reply text names what was dropped.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Mapping

from flask import Response, g, jsonify, request
from pydantic import BaseModel, Field

from greenroom.api import parse_model, text
from greenroom.errors import BadRequest
from greenroom.views import Routes
from greenroom_modules.talkinghead.contract import MORPHS, Avatars, Frame

from .common import needed

if TYPE_CHECKING:
    from .module import Raven

log = logging.getLogger("greenroom.raven")
routes = Routes()

IMAGE_FIELD = "file"
PARAMETERS_FIELD = "json"
"""reload's multipart attachment holding ``{"instance_id"}`` (Raven's JSON-file-attachment convention)."""
NOT_FOUND = "Unknown instance_id (the message names it)"


class InstanceBody(BaseModel):
    instance_id: str = Field(min_length=1, max_length=64, description="What /api/avatar/load answered.")


class TemplatesBody(InstanceBody):
    emotions: dict[str, Any] = Field(default_factory=dict, description="{emotion: {morph: value}} over the "
                                     "defaults ({\"pose\": {...}, \"cels\": {...}} works too); {} restores them.")


class SettingsBody(InstanceBody):
    animator_settings: dict[str, Any] = Field(default_factory=dict, description="Animator settings over the "
                                              "server defaults; {} restores them.")


class EmotionBody(InstanceBody):
    emotion_name: str = Field(min_length=1, max_length=64)


class OverridesBody(InstanceBody):
    overrides: dict[str, Any] = Field(default_factory=dict, description="{morph: value}; {} clears them.")


class ModifyOverridesBody(OverridesBody):
    action: Literal["set", "unset"] = Field(description="'set' merges the given overrides; 'unset' removes them.")


class LoadReply(BaseModel):
    """The new instance."""
    instance_id: str


class FeedQuery(BaseModel):
    instance_id: str = Field(min_length=1, max_length=64)


LOAD_FORM = {"multipart/form-data": {"schema": {"type": "object", "required": [IMAGE_FIELD], "properties": {
    IMAGE_FIELD: {"type": "string", "format": "binary", "description": "The character: an RGBA image."}},
    "additionalProperties": {"type": "string", "format": "binary",
                             "description": "Raven's add-on cels by name (accepted, not rendered)."}}}}
RELOAD_FORM = {"multipart/form-data": {"schema": {"type": "object", "required": [IMAGE_FIELD, PARAMETERS_FIELD],
    "properties": {IMAGE_FIELD: LOAD_FORM["multipart/form-data"]["schema"]["properties"][IMAGE_FIELD],
                   PARAMETERS_FIELD: {"type": "string", "format": "binary",
                                      "description": 'A JSON file: {"instance_id": "..."}'}}}}}
FEED = {"description": "Endless multipart/x-mixed-replace stream (boundary frame); each part has Content-Type, "
                       "Content-Length, X-Crop, X-Full-Size and X-Server-Stats",
        "content": {"multipart/x-mixed-replace; boundary=frame": {"schema": {"type": "string", "format": "binary"}}}}
OK = text('"OK", plus what was not rendered (cel names) or ignored (settings)')


def avatars(module: "Raven") -> Avatars:
    """talkinghead's avatar service, or a 503 naming the module."""
    return needed(module, Avatars, "talkinghead")


def concerns(instance_id: str) -> str:
    """Record that this reply is about ``instance_id``; :func:`name_instance` puts it in ``X-Instance-Id``."""
    g.raven_instance_id = instance_id
    return instance_id


@routes.hook("after_request")
def name_instance(_module: "Raven", response: Response) -> Response:
    """``X-Instance-Id`` on every reply about an instance, errors included (deploy/haproxy.cfg sticks by it)."""
    instance_id = g.get("raven_instance_id")
    if instance_id:
        response.headers.setdefault("X-Instance-Id", instance_id)
    return response


def ok(notes: Iterable[str] = ()) -> Response:
    """Raven-server's plain ``OK``, followed by notes on what was dropped or ignored."""
    return Response("; ".join(["OK", *notes]), mimetype="text/plain")


def only_morphs(values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``values`` without Raven's cel and animefx names (anything that is no THA3 morph), and those names."""
    kept = {name: value for name, value in values.items() if name in MORPHS}
    return kept, [name for name in values if name not in MORPHS]


def not_rendered(names: list[str]) -> list[str]:
    return [f"not rendered (no cels in Greenroom): {', '.join(sorted(set(names))[:20])}"] if names else []


def posted_image() -> tuple[bytes, str, list[str]]:
    """The character image of a multipart request, its name, and the other attachments (ignored cels)."""
    upload = request.files.get(IMAGE_FIELD)
    if upload is None:
        raise BadRequest(f'"{IMAGE_FIELD}" is required: the character image as a multipart attachment',
                         field=IMAGE_FIELD)
    cels = [name for name in request.files if name not in (IMAGE_FIELD, PARAMETERS_FIELD)]
    if cels:
        log.info("raven avatar: cels %s accepted and ignored (Greenroom renders no cels)", ", ".join(cels))
    name = (upload.filename or "upload").replace("\\", "/").rsplit("/", 1)[-1]
    return upload.read(), name, cels


# -- the routes ------------------------------------------------------------------------------------

@routes.api("/api/avatar/load", methods=["POST"], request_content=LOAD_FORM, tags=["raven"],
            summary="Raven: a new avatar instance showing the posted character; {instance_id}",
            responses={200: LoadReply, 400: "No image, or not an RGBA image",
                       413: "Image too large", 429: "Too many instances", 503: "talkinghead is not loaded"})
def avatar_load(module: "Raven"):
    """Always a new instance, paused until /api/avatar/start (as Raven-server does)."""
    service = avatars(module)
    image, name, _cels = posted_image()
    return jsonify({"instance_id": concerns(service.create(image, name, paused=True))})


@routes.api("/api/avatar/reload", methods=["POST"], request_content=RELOAD_FORM, tags=["raven"],
            summary="Raven: show another character in an instance",
            responses={200: OK, 400: "No image, bad image or bad json attachment", 404: NOT_FOUND})
def avatar_reload(module: "Raven"):
    service = avatars(module)
    attachment = request.files.get(PARAMETERS_FIELD)
    if attachment is None:
        raise BadRequest(f'"{PARAMETERS_FIELD}" is required: a JSON attachment {{"instance_id": "..."}}',
                         field=PARAMETERS_FIELD)
    try:
        parameters = json.loads(attachment.read(65536))
    except ValueError as exc:
        raise BadRequest(f"{PARAMETERS_FIELD}: not JSON ({exc})", field=PARAMETERS_FIELD) from None
    target = parse_model(InstanceBody, parameters, PARAMETERS_FIELD)
    concerns(target.instance_id)
    image, name, cels = posted_image()
    service.reload(target.instance_id, image, name)
    return ok(not_rendered(cels))


@routes.api("/api/avatar/unload", methods=["POST"], body=InstanceBody, tags=["raven"],
            summary="Raven: delete an instance (its feeds end); 200 for an unknown id too",
            responses={200: OK})
def avatar_unload(module: "Raven", body: InstanceBody):
    if not avatars(module).delete(concerns(body.instance_id)):
        return ok([f"no instance '{body.instance_id}'"])
    return ok()


@routes.api("/api/avatar/load_emotion_templates", methods=["POST"], body=TemplatesBody, tags=["raven"],
            summary="Raven: emotion templates over the defaults ({} restores them)",
            responses={200: OK, 400: "Bad emotion name or morph value (named)", 404: NOT_FOUND})
def avatar_load_emotion_templates(module: "Raven", body: TemplatesBody):
    templates, dropped = {}, []
    for emotion, entry in body.emotions.items():
        if isinstance(entry, dict) and isinstance(entry.get("pose"), dict):
            dropped += list(entry.get("cels") or ())
            entry = entry["pose"]
        if isinstance(entry, dict):
            entry, cels = only_morphs(entry)
            dropped += cels
        templates[emotion] = entry
    avatars(module).load_templates(concerns(body.instance_id), templates)
    return ok(not_rendered(dropped))


@routes.api("/api/avatar/load_animator_settings", methods=["POST"], body=SettingsBody, tags=["raven"],
            summary="Raven: animator settings over the defaults ({} restores them)",
            responses={200: OK, 400: "Bad value (the setting is named)", 404: NOT_FOUND})
def avatar_load_animator_settings(module: "Raven", body: SettingsBody):
    return ok(avatars(module).load_settings(concerns(body.instance_id), with_crop_box(body.animator_settings)))


def switch(name: str, summary: str, act: Callable[[Avatars, str], None]) -> None:
    """A route ``/api/avatar/<name>`` taking ``{"instance_id"}``, answering ``OK``, doing ``act``."""
    def view(module: "Raven", body: InstanceBody) -> Response:
        act(avatars(module), concerns(body.instance_id))
        return ok()
    view.__name__ = view.__qualname__ = f"avatar_{name}"
    routes.api(f"/api/avatar/{name}", methods=["POST"], body=InstanceBody, tags=["raven"], summary=summary,
               responses={200: OK, 404: NOT_FOUND})(view)


switch("start", "Raven: start (resume) the animation", lambda a, instance_id: a.set_paused(instance_id, False))
switch("stop", "Raven: pause the animation (feeds re-send the last frame once a second)",
       lambda a, instance_id: a.set_paused(instance_id, True))
switch("start_talking", "Raven: start the generic talking animation",
       lambda a, instance_id: a.set_talking(instance_id, True))
switch("stop_talking", "Raven: stop the generic talking animation",
       lambda a, instance_id: a.set_talking(instance_id, False))


@routes.api("/api/avatar/set_emotion", methods=["POST"], body=EmotionBody, tags=["raven"],
            summary="Raven: show an emotion", responses={200: OK, 400: "Unknown emotion", 404: NOT_FOUND})
def avatar_set_emotion(module: "Raven", body: EmotionBody):
    avatars(module).set_emotion(concerns(body.instance_id), body.emotion_name)
    return ok()


@routes.api("/api/avatar/set_overrides", methods=["POST"], body=OverridesBody, tags=["raven"],
            summary="Raven: replace every direct morph override ({} clears them)",
            responses={200: OK, 400: "Value out of range (the morph is named)", 404: NOT_FOUND})
def avatar_set_overrides(module: "Raven", body: OverridesBody):
    overrides, cels = only_morphs(body.overrides)
    avatars(module).set_overrides(concerns(body.instance_id), overrides)
    return ok(not_rendered(cels))


@routes.api("/api/avatar/modify_overrides", methods=["POST"], body=ModifyOverridesBody, tags=["raven"],
            summary="Raven: set or unset some direct morph overrides",
            responses={200: OK, 400: "Value out of range (the morph is named)", 404: NOT_FOUND})
def avatar_modify_overrides(module: "Raven", body: ModifyOverridesBody):
    overrides, cels = only_morphs(body.overrides)
    avatars(module).modify_overrides(concerns(body.instance_id), body.action, overrides)
    return ok(not_rendered(cels))


@routes.api("/api/avatar/result_feed", query=FeedQuery, auth=False, tags=["raven"],
            summary="Raven: the live video as multipart/x-mixed-replace; boundary=frame (no API key, as in Raven)",
            responses={200: FEED, 404: NOT_FOUND, 503: "Too many open streams"})
def avatar_result_feed(module: "Raven", query: FeedQuery):
    frames = avatars(module).feed(concerns(query.instance_id))  # 404 here, before the stream starts
    return Response(module.context.stream(raven_parts(frames)),
                    mimetype="multipart/x-mixed-replace; boundary=frame",
                    headers={"Cache-Control": "no-cache, no-store", "Pragma": "no-cache"})


# -- Raven's feed part headers and crop setting ------------------------------------------------------

def raven_parts(frames: Iterator[Frame]) -> Iterator[bytes]:
    for frame in frames:
        headers = {"Content-Type": frame.media_type, "Content-Length": str(len(frame.data)),
                   "X-Crop": x_crop(frame), "X-Full-Size": "{} {}".format(*frame.full_size),
                   "X-Server-Stats": x_server_stats(frame)}
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        yield b"--frame\r\n" + head.encode("ascii") + b"\r\n" + frame.data + b"\r\n"


def x_crop(frame: Frame) -> str:
    """Raven's crop bbox: {enabled, left, top, right, bottom} as fractions of the full (uncropped) frame."""
    left, top, right, bottom = frame.crop or (0.0, 0.0, 1.0, 1.0)
    return json.dumps({"enabled": frame.crop is not None, "left": round(left, 6), "top": round(top, 6),
                       "right": round(right, 6), "bottom": round(bottom, 6)}, separators=(",", ":"))


def x_server_stats(frame: Frame) -> str:
    """Raven's per-stage figures (render, encode, output: ms and fps; target_fps), from talkinghead's stages:
    render is posing, encode the whole output stage (crop, filters, upscale, encoding), output this feed's
    sending. Every value is a number (0.0 until measured): Raven's renderer formats them as floats."""
    s = frame.stats

    def number(key: str) -> float:
        value = s.get(key)
        return float(value) if value is not None else 0.0

    send_fps = number("send_fps")
    stats = {"render_ms": number("pose_ms"), "render_fps": number("render_fps"),
             "encode_ms": number("frame_ms"), "encode_fps": number("encode_fps"),
             "output_ms": round(1000.0 / send_fps, 2) if send_fps else 0.0, "output_fps": send_fps,
             "target_fps": number("target_fps")}
    return json.dumps(stats, separators=(",", ":"))


def with_crop_box(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Raven's settings, with a ``crop`` given as the X-Crop box turned into talkinghead's crop_* settings
    (EX units: the full width is 2.0). Disabled or absent: the crop_* keys as sent."""
    out = dict(settings)
    box = out.pop("crop", None)
    if box is None:
        return out
    if not isinstance(box, dict) or not all(isinstance(box.get(k), (int, float)) for k in
                                            ("left", "top", "right", "bottom")):
        raise BadRequest("crop: expected {enabled, left, top, right, bottom} (fractions of the frame)", field="crop")
    if box.get("enabled", True):
        out.update(crop_left=2.0 * box["left"], crop_top=2.0 * box["top"],
                   crop_right=2.0 * (1.0 - box["right"]), crop_bottom=2.0 * (1.0 - box["bottom"]))
    else:
        out.update(crop_left=0.0, crop_top=0.0, crop_right=0.0, crop_bottom=0.0)
    return out
