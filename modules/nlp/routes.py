"""HTTP routes of the nlp module: spaCy analysis as language-neutral JSON."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson
from flask import Response, jsonify
from pydantic import BaseModel

from greenroom.views import Routes
from greenroom_modules.textinput import text_batch

from .schemas import AnalyzeRequest, DocJson, InfoReply

if TYPE_CHECKING:
    from .module import Nlp

log = logging.getLogger("greenroom.nlp")


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON Schema with its ``$defs`` substituted in place (for a bare-array response)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def expand(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return expand(defs[ref.rsplit("/", 1)[1]])
            return {k: expand(v) for k, v in node.items()}
        if isinstance(node, list):
            return [expand(v) for v in node]
        return node

    return expand(schema)


DOC_LIST = {"description": "A JSON array of spaCy Doc.to_json() documents, one per input text, in order",
            "content": {"application/json": {"schema": {"type": "array", "items": inline_schema(DocJson)}}}}

routes = Routes()


@routes.api("/api/nlp/analyze", methods=["POST"], body=AnalyzeRequest,
            summary="spaCy analysis: tokens, tags, lemmas, dependencies, sentences, entities",
            responses={200: DOC_LIST, 400: "Bad text, unknown pipe, or oversized input"})
def analyze(module: "Nlp", body: AnalyzeRequest):
    """Returns a list of ``Doc.to_json()`` documents (modules/nlp/client.py turns them back into Docs)."""
    s = module.settings
    texts, _ = text_batch(body.text, "text", s.max_texts, s.max_text_chars)
    pipeline = module.pipeline()
    components = pipeline.plan(body.pipes)
    t0 = time.perf_counter()
    documents = pipeline.analyze(texts, components, s.batch_size)
    log.info("analysed %d texts (%d chars) with %s in %.1f ms", len(texts), sum(map(len, texts)),
             ",".join(components), (time.perf_counter() - t0) * 1000)
    return Response(orjson.dumps(documents), mimetype="application/json")


@routes.api("/api/nlp/info", summary="The served spaCy pipeline, its versions and components",
            responses={200: InfoReply})
def info(module: "Nlp"):
    return jsonify(module.pipeline().info())
