"""HTTP routes of the classify module (SillyTavern's Character Expressions calls)."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from flask import jsonify

from greenroom.views import Routes
from greenroom_modules.textinput import text_batch

from .schemas import ClassifyReply, ClassifyRequest, LabelsReply

if TYPE_CHECKING:
    from .module import Classify

log = logging.getLogger("greenroom.classify")

TALKINGHEAD = "talkinghead"

routes = Routes()


@routes.api("/api/classify", methods=["POST"], body=ClassifyRequest,
            summary="Emotion of a text: every label with its score, highest first",
            responses={200: ClassifyReply, 400: "Missing/wrong-typed text, empty or oversized input"})
def classify(module: "Classify", body: ClassifyRequest):
    """A single text also tells subscribers of 'classify.result' (talkinghead sets its emotion)."""
    s = module.settings
    texts, single = text_batch(body.text, "text", s.max_texts, s.max_text_chars)
    t0 = time.perf_counter()
    rankings = module.classify(texts)
    log.info("classified %d texts (%d chars) in %.1f ms", len(texts), sum(map(len, texts)),
             (time.perf_counter() - t0) * 1000)
    if single:
        module.context.publish("classify.result", label=rankings[0][0]["label"], scores=rankings[0])
    return jsonify({"classification": rankings[0] if single else rankings})


@routes.api("/api/classify/labels", summary="The labels the classifier gives (+ 'talkinghead' when it is on)",
            responses={200: LabelsReply})
def labels(module: "Classify"):
    names = list(module.labels())
    if module.context.is_loaded(TALKINGHEAD):
        names.append(TALKINGHEAD)
    return jsonify({"labels": names})

