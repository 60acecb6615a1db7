"""HTTP routes of the embeddings module: SillyTavern's /api/embeddings/*, and OpenAI's /v1/embeddings."""
from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from flask import Response

from greenroom import ApiError
from greenroom_modules.textinput import text_batch
from greenroom.views import Routes

from .schemas import ComputeReply, ComputeRequest, InfoReply, OpenAIReply, OpenAIRequest

if TYPE_CHECKING:
    from .module import Embeddings

log = logging.getLogger("greenroom.embeddings")


def json_response(payload: Any) -> Response:
    """orjson writes numpy float32 arrays directly: ~20x faster than ``jsonify`` on 1000 vectors."""
    return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), mimetype="application/json")


def base64_vectors(vectors: np.ndarray) -> list[str]:
    """Each vector as base64 of its little-endian float32 bytes (what OpenAI clients decode)."""
    data = np.ascontiguousarray(vectors, dtype="<f4")
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in data]


routes = Routes()


def _embed(module: "Embeddings", value: str | list[str], field: str, role_name: str | None):
    """Texts from ``value`` embedded by the role ``role_name`` asks for; logged."""
    s = module.settings
    texts, single = text_batch(value, field, s.max_texts, s.max_text_chars)
    role = module.role_for(role_name)
    t0 = time.perf_counter()
    vectors, tokens = module.embed(texts, role)
    log.info("embedded %d texts (%d chars) with role %s in %.1f ms", len(texts), sum(map(len, texts)),
             role, (time.perf_counter() - t0) * 1000)
    return role, vectors, tokens, single


@routes.api("/api/embeddings/compute", methods=["POST"], body=ComputeRequest,
            summary="Sentence embeddings (SillyTavern Vector Storage, 'Extras' source)",
            responses={200: ComputeReply, 400: "Missing/wrong-typed text, empty or oversized input, unknown role",
                       413: "More tokens than max_request_tokens"})
def compute(module: "Embeddings", body: ComputeRequest):
    """Unit-length vectors; a string gives one vector, a list gives a list of vectors in input order."""
    _, vectors, _, single = _embed(module, body.text, "text", body.model)
    return json_response({"embedding": vectors[0] if single else vectors})


@routes.api("/api/embeddings/info", summary="Roles, their models and vector dimensions",
            responses={200: InfoReply})
def info(module: "Embeddings"):
    return json_response(module.info())


@routes.api("/v1/embeddings", methods=["POST"], body=OpenAIRequest,
            summary="OpenAI-compatible embeddings (works with the openai client's embeddings.create)",
            responses={200: OpenAIReply, 400: "Bad input, unknown model or unsupported dimensions",
                       413: "More tokens than max_request_tokens"})
def openai_embeddings(module: "Embeddings", body: OpenAIRequest):
    """``model`` is a role name or a configured model name; ``encoding_format: base64`` is supported."""
    role, vectors, tokens, _ = _embed(module, body.input, "input", body.model)
    dimension = vectors.shape[1]
    if body.dimensions is not None and body.dimensions != dimension:
        raise ApiError(400, f"dimensions: this model gives {dimension}-dimensional vectors; "
                            f"{body.dimensions} is not supported")
    encoded = base64_vectors(vectors) if body.encoding_format == "base64" else vectors
    used = int(sum(tokens))
    return json_response({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(encoded)],
        "model": module.settings.roles[role],
        "usage": {"prompt_tokens": used, "total_tokens": used},
    })

