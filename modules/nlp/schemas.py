"""Request and response models of the nlp routes; the response is spaCy's documented ``Doc.to_json()``."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from greenroom_modules.textinput import TextOrTexts


class AnalyzeRequest(BaseModel):
    text: TextOrTexts = Field(description="A text or a list of texts; the reply is always a list of documents.")
    pipes: list[str] | None = Field(
        None, max_length=64, description="Run only these components (plus what they need, e.g. the shared "
                                         "tok2vec); e.g. ['senter'] for fast sentence splitting. Default: "
                                         "the pipeline's enabled components.")


class CharSpan(BaseModel):
    """Character offsets into ``text`` (end exclusive)."""
    start: int
    end: int


class EntityJson(CharSpan):
    label: str


class TokenJson(BaseModel):
    """One token; annotation keys appear only when a component set them."""
    model_config = ConfigDict(extra="allow")
    id: int
    start: int
    end: int
    tag: str | None = None
    pos: str | None = None
    morph: str | None = Field(None, description="Universal Dependencies features, 'A=B|C=D'.")
    lemma: str | None = None
    dep: str | None = None
    head: int | None = Field(None, description="Token id of the syntactic head (itself for the root).")


class DocJson(BaseModel):
    """spaCy's ``Doc.to_json()``: offsets are in characters of ``text``."""
    model_config = ConfigDict(extra="allow")
    text: str
    ents: list[EntityJson] | None = None
    sents: list[CharSpan] | None = None
    tokens: list[TokenJson]


class InfoReply(BaseModel):
    """The served pipeline: name, versions (spaCy's matters to Python clients) and components."""
    model_config = ConfigDict(extra="allow")
    model: str
    package: str
    version: str | None
    spacy_version: str
    lang: str
    components: list[str]
    default_pipes: list[str]
