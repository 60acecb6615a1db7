"""Routes of the pose editor: one posed image on request, and named emotion template sets.

Part of the talkinghead blueprint (``routes.py`` includes these views); the page itself lives in
``web/pose-editor.html``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from greenroom import ApiError
from greenroom.api import binary, text
from greenroom.views import Routes

from . import pose as P
from .poser import Character
from .posing import Outcome, PoseImage
from .request import instance_from_request, instance_id_field, loaded_manager, plain, requested_instance_id
from .schemas import CHARACTER_PATTERN
from .templates_store import DEFAULT_SET, NAME_PATTERN, TemplateStore, normalise

if TYPE_CHECKING:
    from .module import Talkinghead

log = logging.getLogger("greenroom.talkinghead")
T = TypeVar("T")
CHANNEL_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class PoseBody(BaseModel):
    """One pose of one character. Omitted morphs are 0 (THA3's rest pose)."""
    model_config = ConfigDict(extra="forbid")
    pose: dict[str, float] = Field(default_factory=dict, description="{morph: value}; names and ranges as in "
                                   "/api/talkinghead/morphs (0..1, rotations and iris -1..1).")
    character: str | None = Field(None, pattern=CHARACTER_PATTERN, description="A character from assets/characters "
                                  "(see /api/talkinghead/characters).")
    instance_id: str | None = instance_id_field("Pose the character this instance shows (e.g. an upload). "
                                                "Without character and instance_id: the default instance.")
    channel: str | None = Field(None, pattern=CHANNEL_PATTERN, description="Coalescing key: of the requests waiting "
                                "on one channel only the newest is rendered, the others get its image. One per "
                                "editor; default: the client's address.")


class SetBody(BaseModel):
    """An emotion set: {emotion: {morph: value}} (or {emotion: {"pose": {...}}}), as load_emotion_templates takes."""
    model_config = ConfigDict(extra="allow")


class SaveQuery(BaseModel):
    overwrite: bool = Field(True, description="false: answer 409 instead of replacing an existing set.")


class LoadSetBody(BaseModel):
    """Load a saved set into an instance (merged over the shipped defaults, like load_emotion_templates)."""
    name: str = Field(pattern=NAME_PATTERN, description="A set from /api/talkinghead/emotion_sets; 'default' resets.")
    instance_id: str | None = instance_id_field("Instance to act on; default instance when omitted.")


class SetInfo(BaseModel):
    name: str
    bytes: int | None = None
    modified: str | None = None
    read_only: bool = False


class SetList(BaseModel):
    """The saved emotion sets ('default' is the shipped one)."""
    sets: list[SetInfo]


class SaveReply(BaseModel):
    """Where the set went."""
    name: str
    created: bool
    emotions: int


class PoseStats(BaseModel):
    """Counters of the pose endpoint: requests, renders, requests answered by a newer render."""
    model_config = ConfigDict(extra="allow")
    requests: int
    renders: int
    superseded: int
    rendering: int
    waiting: int


POSE_IMAGE = binary("image/png", description="512x512 RGBA PNG (sRGB, straight alpha). Headers: X-Pose-Superseded "
                    "(1: a newer request on the channel was rendered instead), X-Pose-Cache (hit/miss), "
                    "X-Render-Ms, X-Character-Digest")


routes = Routes()


def _character_for(module: "Talkinghead", body: PoseBody) -> Character:
    """The named shipped character, or the one the requested instance shows."""
    if body.character and body.instance_id:
        raise ApiError(400, "character: give either character or instance_id, not both", field="character")
    if body.character:
        return module.posing.named_character(body.character)
    if requested_instance_id(body) is None and loaded_manager(module).find(None) is None:
        raise ApiError(400, "character: give a character name or an instance_id (there is no default "
                            "instance)", field="character")
    return instance_from_request(module, body).character


def _stored(fn: Callable[..., T], *args: Any) -> T:
    """Call the emotion set store; a failure of the disk (not one of its own errors) is a 500 saying what."""
    try:
        return fn(*args)
    except ApiError:
        raise
    except (OSError, ValueError) as exc:
        raise ApiError(500, f"emotion set store: {type(exc).__name__}: {exc}") from None


def _pose_headers(outcome: Outcome[PoseImage]) -> dict[str, str]:
    image = outcome.value
    return {"Cache-Control": "no-store", "X-Pose-Superseded": "1" if outcome.superseded else "0",
            "X-Pose-Cache": "hit" if image.cached else "miss", "X-Render-Ms": f"{image.render_ms:.0f}",
            "X-Character-Digest": image.digest, "X-Pose-Seq": str(outcome.seq),
            "X-Pose-Rendered-Seq": str(outcome.rendered_seq)}


@routes.api("/api/talkinghead/pose", methods=["POST"], body=PoseBody,
            summary="Render one pose of a character as a 512x512 RGBA PNG (the pose editor's preview)",
            description="About a second on a CPU. Requests on the same channel coalesce: while one renders, "
                        "only the newest waiting request is rendered next and the ones it replaced get its image.",
            responses={200: POSE_IMAGE, 400: "Unknown morph, value out of range, or no character (named)",
                       404: "Unknown character or instance_id"})
def pose(module: "Talkinghead", body: PoseBody):
    values = P.check_morphs(body.pose, where="pose")
    char = _character_for(module, body)
    channel = body.channel or f"addr:{request.remote_addr or '-'}"
    outcome = module.posing.render(char, P.to_vector(values), channel)
    log.info("talkinghead pose: %d morphs set, %s, %.0f ms%s", len(values), "cached" if outcome.value.cached
             else "rendered", outcome.value.render_ms, ", superseded" if outcome.superseded else "")
    return Response(outcome.value.png, mimetype="image/png", headers=_pose_headers(outcome))


@routes.api("/api/talkinghead/pose/stats", summary="Counters of the pose endpoint (coalescing, cache)",
            responses={200: PoseStats})
def pose_stats(module: "Talkinghead"):
    return jsonify(module.posing.stats())


@routes.api("/api/talkinghead/emotion_sets", summary="Named emotion template sets saved on the server",
            responses={200: SetList})
def emotion_sets(module: "Talkinghead"):
    return jsonify({"sets": [{"name": DEFAULT_SET, "read_only": True}] + _stored(TemplateStore().names)})


@routes.api("/api/talkinghead/emotion_sets/<name>", summary="One emotion set as {emotion: {morph: value}} "
            "(the load_emotion_templates format); 'default' is the shipped set",
            responses={200: {"description": "The set (zero morphs left out)"}, 400: "Bad name", 404: "No such set"})
def emotion_set(module: "Talkinghead", name: str):
    if name == DEFAULT_SET:
        return jsonify(normalise(module.default_templates()))
    return jsonify(normalise(_stored(TemplateStore().load, name)))


@routes.api("/api/talkinghead/emotion_sets/<name>", methods=["PUT"], body=SetBody, query=SaveQuery,
            summary="Save an emotion set under a name (assets/emotions/sets/<name>.json)",
            responses={200: SaveReply, 400: "Bad name, morph or value (named)", 409: "Exists (overwrite=false) "
                       "or 'default'"})
def save_emotion_set(module: "Talkinghead", name: str, body: SetBody, query: SaveQuery):
    templates = _stored(P.parse_templates, dict(body.model_extra or {}))
    created = _stored(TemplateStore().save, name, templates, query.overwrite)
    log.info("talkinghead: emotion set %s %s (%d emotions)", name, "created" if created else "replaced",
             len(templates))
    return jsonify({"name": name, "created": created, "emotions": len(templates)})


@routes.api("/api/talkinghead/emotion_sets/<name>", methods=["DELETE"], summary="Delete a saved emotion set",
            responses={200: text("deleted"), 400: "Bad name", 404: "No such set", 409: "'default'"})
def delete_emotion_set(module: "Talkinghead", name: str):
    _stored(TemplateStore().delete, name)
    return Response(f"emotion set {name} deleted", mimetype="text/plain")


@routes.api("/api/talkinghead/load_emotion_set", methods=["POST"], body=LoadSetBody,
            summary="Load a saved emotion set into an instance by name (merged over the defaults)",
            responses={200: text("OK"), 404: "No such set or instance"})
def load_emotion_set(module: "Talkinghead", body: LoadSetBody):
    parsed = {} if body.name == DEFAULT_SET else _stored(TemplateStore().load, body.name)
    inst = instance_from_request(module, body)
    inst.set_templates({**module.default_templates(), **parsed})
    log.info("talkinghead %s: emotion set %s loaded (%d emotions)", inst.id, body.name, len(parsed))
    return plain("OK", inst)
