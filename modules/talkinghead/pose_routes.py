"""Routes of the pose editor: one posed image on request, and named emotion template sets.

Added to the talkinghead blueprint by :func:`add_pose_routes`; the page itself lives in
``greenroom/ui/pose-editor.html``.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from greenroom import ApiBlueprint, ApiError
from greenroom.api import binary, text

from . import pose as P
from .images import ImageError
from .manager import InstanceError
from .posing import PoseService
from .poser import Character
from .templates_store import DEFAULT_SET, NAME_PATTERN, StoreError, TemplateStore, normalise

if TYPE_CHECKING:
    from .module import Talkinghead

log = logging.getLogger("greenroom.talkinghead")
ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
CHARACTER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
CHANNEL_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"


class PoseBody(BaseModel):
    """One pose of one character. Omitted morphs are 0 (THA3's rest pose)."""
    model_config = ConfigDict(extra="forbid")
    pose: dict[str, float] = Field(default_factory=dict, description="{morph: value}; names and ranges as in "
                                   "/api/talkinghead/morphs (0..1, rotations and iris -1..1).")
    character: str | None = Field(None, pattern=CHARACTER_PATTERN, description="A character from assets/characters "
                                  "(see /api/talkinghead/characters).")
    instance_id: str | None = Field(None, pattern=ID_PATTERN, description="Pose the character this instance shows "
                                    "(e.g. an upload). Without character and instance_id: the default instance.")
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
    instance_id: str | None = Field(None, pattern=ID_PATTERN, description="Instance to act on; default instance "
                                    "when omitted.")


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


def add_pose_routes(bp: ApiBlueprint, module: "Talkinghead") -> None:  # noqa: C901 - one function per route
    """Register the pose editor's routes on the talkinghead blueprint."""
    service = PoseService(module)
    bp.posing = service  # type: ignore[attr-defined]  # tests and status readers reach the counters here

    def loaded() -> None:
        if module.manager is None or module.poser is None:
            raise ApiError(503, "talkinghead is not loaded")

    def store() -> TemplateStore:
        return TemplateStore()

    def find_instance(instance_id: str | None):
        loaded()
        try:
            return module.manager.get(instance_id)
        except InstanceError as exc:
            raise ApiError(exc.status, str(exc), instance_id=exc.instance_id) from None

    def character_for(body: PoseBody) -> Character:
        if body.character and body.instance_id:
            raise ApiError(400, "character: give either character or instance_id, not both", field="character")
        if body.character:
            try:
                return service.named_character(body.character)
            except ImageError as exc:
                raise ApiError(exc.status, str(exc), field="character") from None
        if body.instance_id is None and module.manager.find(None) is None:
            raise ApiError(400, "character: give a character name or an instance_id (there is no default "
                                "instance)", field="character")
        return find_instance(body.instance_id).character

    def store_call(fn, *args):
        try:
            return fn(*args)
        except StoreError as exc:
            raise ApiError(exc.status, str(exc), field="name" if str(exc).startswith("name") else "emotions") from None
        except P.PoseError as exc:
            raise ApiError(400, str(exc), field=exc.field, **exc.extra) from None
        except (OSError, ValueError) as exc:
            raise ApiError(500, f"emotion set store: {type(exc).__name__}: {exc}") from None

    @bp.api("/api/talkinghead/pose", methods=["POST"], body=PoseBody,
            summary="Render one pose of a character as a 512x512 RGBA PNG (the pose editor's preview)",
            description="About a second on a CPU. Requests on the same channel coalesce: while one renders, "
                        "only the newest waiting request is rendered next and the ones it replaced get its image.",
            responses={200: POSE_IMAGE, 400: "Unknown morph, value out of range, or no character (named)",
                       404: "Unknown character or instance_id"})
    def pose(body: PoseBody):
        loaded()
        try:
            values = P.check_morphs(body.pose, where="pose")
        except P.PoseError as exc:
            raise ApiError(400, str(exc), field=exc.field, **exc.extra) from None
        char = character_for(body)
        channel = body.channel or f"addr:{request.remote_addr or '-'}"
        outcome = service.render(char, P.to_vector(values), channel)
        image = outcome.value
        log.info("talkinghead pose: %d morphs set, %s, %.0f ms%s", len(values), "cached" if image.cached else
                 "rendered", image.render_ms, ", superseded" if outcome.superseded else "")
        return Response(image.png, mimetype="image/png", headers={
            "Cache-Control": "no-store", "X-Pose-Superseded": "1" if outcome.superseded else "0",
            "X-Pose-Cache": "hit" if image.cached else "miss", "X-Render-Ms": f"{image.render_ms:.0f}",
            "X-Character-Digest": image.digest, "X-Pose-Seq": str(outcome.seq),
            "X-Pose-Rendered-Seq": str(outcome.rendered_seq)})

    @bp.api("/api/talkinghead/pose/stats", summary="Counters of the pose endpoint (coalescing, cache)",
            responses={200: PoseStats})
    def pose_stats():
        return jsonify(service.stats())

    @bp.api("/api/talkinghead/emotion_sets", summary="Named emotion template sets saved on the server",
            responses={200: SetList})
    def emotion_sets():
        sets = [{"name": DEFAULT_SET, "read_only": True}] + store_call(store().names)
        return jsonify({"sets": sets})

    @bp.api("/api/talkinghead/emotion_sets/<name>", summary="One emotion set as {emotion: {morph: value}} "
            "(the load_emotion_templates format); 'default' is the shipped set",
            responses={200: {"description": "The set (zero morphs left out)"}, 400: "Bad name", 404: "No such set"})
    def emotion_set(name: str):
        if name == DEFAULT_SET:
            loaded()
            return jsonify(normalise(module.default_templates()))
        return jsonify(normalise(store_call(store().load, name)))

    @bp.api("/api/talkinghead/emotion_sets/<name>", methods=["PUT"], body=SetBody, query=SaveQuery,
            summary="Save an emotion set under a name (assets/emotions/sets/<name>.json)",
            responses={200: SaveReply, 400: "Bad name, morph or value (named)", 409: "Exists (overwrite=false) "
                       "or 'default'"})
    def save_emotion_set(name: str, body: SetBody, query: SaveQuery):
        data = dict(body.model_extra or {})
        templates = store_call(P.parse_templates, data)
        created = store_call(store().save, name, templates, query.overwrite)
        log.info("talkinghead: emotion set %s %s (%d emotions)", name, "created" if created else "replaced",
                 len(templates))
        return jsonify({"name": name, "created": created, "emotions": len(templates)})

    @bp.api("/api/talkinghead/emotion_sets/<name>", methods=["DELETE"], summary="Delete a saved emotion set",
            responses={200: text("deleted"), 400: "Bad name", 404: "No such set", 409: "'default'"})
    def delete_emotion_set(name: str):
        store_call(store().delete, name)
        return Response(f"emotion set {name} deleted", mimetype="text/plain")

    @bp.api("/api/talkinghead/load_emotion_set", methods=["POST"], body=LoadSetBody,
            summary="Load a saved emotion set into an instance by name (merged over the defaults)",
            responses={200: text("OK"), 404: "No such set or instance"})
    def load_emotion_set(body: LoadSetBody):
        parsed = {} if body.name == DEFAULT_SET else store_call(store().load, body.name)
        inst = find_instance(body.instance_id)
        inst.set_templates({**module.default_templates(), **parsed})
        log.info("talkinghead %s: emotion set %s loaded (%d emotions)", inst.id, body.name, len(parsed))
        response = Response("OK", mimetype="text/plain")
        response.headers["X-Instance-Id"] = inst.id
        return response
