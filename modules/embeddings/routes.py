"""HTTP routes of the embeddings module: SillyTavern's /api/embeddings/*, and OpenAI's /v1/embeddings."""
from __future__ import annotations

import base64
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from flask import Response

from greenroom import BadRequest
from greenroom_modules.textinput import text_batch
from greenroom.views import Routes

from .names import openai_role, short_name
from .schemas import ComputeReply, ComputeRequest, InfoReply, OpenAIReply, OpenAIRequest
from .token_ids import ModelVocabulary, OpenAIVocabulary, Vocabulary, decode_all, is_token_ids

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


def shortened(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """The first ``dimensions`` of each vector, back at unit length (OpenAI's ``dimensions``)."""
    size = vectors.shape[1]
    if dimensions > size:
        raise BadRequest(f"dimensions: this model gives {size}-dimensional vectors; {dimensions} is more "
                         f"(send at most {size})")
    cut = vectors[:, :dimensions]
    return (cut / np.maximum(np.linalg.norm(cut, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def vocabulary(module: "Embeddings", role: str, model: str) -> Vocabulary:
    """Whose token IDs a request sends: OpenAI's for an OpenAI model name, else the served model's own."""
    if model.casefold() in {alias.casefold() for alias in module.settings.model_aliases}:
        return OpenAIVocabulary()
    encoder = module.encoder(role)
    return ModelVocabulary(short_name(module.settings.roles[role]), encoder.model.tokenizer, encoder.lock)


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
            responses={200: OpenAIReply, 400: "Bad input, token IDs out of range or too many dimensions",
                       404: "Unknown model (model_not_found)", 413: "More tokens than max_request_tokens"})
def openai_embeddings(module: "Embeddings", body: OpenAIRequest):
    """``model`` names the served model, an alias or a role; token-ID input, ``dimensions`` and
    ``encoding_format: base64`` work as in OpenAI's API. Errors have OpenAI's shape."""
    role = openai_role(module.settings, body.model)
    value = body.input
    if is_token_ids(value):
        value = decode_all(value, vocabulary(module, role, body.model))  # type: ignore[arg-type]
    role, vectors, tokens, _ = _embed(module, value, "input", role)  # type: ignore[arg-type]
    if body.dimensions is not None:
        vectors = shortened(vectors, body.dimensions)
    encoded = base64_vectors(vectors) if body.encoding_format == "base64" else vectors
    used = int(sum(tokens))
    return json_response({
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(encoded)],
        "model": module.settings.roles[role],
        "usage": {"prompt_tokens": used, "total_tokens": used},
    })

