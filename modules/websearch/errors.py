"""Why an engine could not answer. The kind decides the final status: all timeouts -> 504, else 502."""
from __future__ import annotations

from typing import Literal

FailureKind = Literal["timeout", "http", "malformed", "rate_limited", "connection", "config", "error"]


class EngineError(Exception):
    """An engine could not answer. Messages must never contain the query text: they are logged and
    returned to clients."""

    kind: FailureKind = "error"

    def __init__(self, message: str, kind: FailureKind | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            self.kind = kind
        self.retry_after = retry_after
        """Seconds the engine asked us to stay away (429, CAPTCHA pages); None when it did not say."""


class EngineTimeout(EngineError):
    kind = "timeout"


class EngineRateLimited(EngineError):
    kind = "rate_limited"


class EngineMalformed(EngineError):
    kind = "malformed"
