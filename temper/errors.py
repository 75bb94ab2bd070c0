"""Errors that every surface renders in the OpenAI error shape.

Capability code raises these; the HTTP surfaces turn them into
``{"error": {"message", "type", "param", "code", "params"}}`` with ``status``,
and the CLI prints ``message`` without a traceback. ``code`` is stable and ``params`` holds the named
values the message mentions (``{"model": "nope"}``), so that a client such as the console can say the
same thing in its own language from ``code`` and ``params`` alone.
"""
from __future__ import annotations

from typing import Any


class TemperError(Exception):
    status = 400
    type = "invalid_request_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 status: int | None = None, headers: dict[str, str] | None = None, etype: str | None = None,
                 params: dict[str, str | int | float | None] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.params = params or {}
        if code is not None:
            self.code = code
        if etype is not None:
            self.type = etype
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code,
                          "params": self.params}}


class InvalidRequest(TemperError):
    """400: the request is malformed or a field has a wrong type or value."""


class AuthenticationError(TemperError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(TemperError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(TemperError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(TemperError):
    status = 409
    code = "conflict"


class RateLimited(TemperError):
    status = 429
    type = "rate_limit_error"  # OpenAI uses "requests"/"tokens"; code carries the reason
    code = "rate_limit_exceeded"


class QuotaExceeded(TemperError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class UpstreamError(TemperError):
    """502: an upstream failed or answered with a server error."""

    status = 502
    type = "api_error"
    code = "upstream_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class Unsupported(InvalidRequest):
    """400: the backend cannot honour a requested feature (e.g. strict schemas)."""

    code = "unsupported_parameter"


def validation_params(first: dict[str, Any], param: str | None) -> dict[str, Any]:
    """What a client needs to word a validation error (one of pydantic's ``errors()``) itself: the field,
    pydantic's reason (``missing``, ``less_than_equal``, ...) and the limits it names (``le``, ``max_length``)."""
    ctx = {k: v for k, v in (first.get("ctx") or {}).items() if isinstance(v, (str, int, float)) and not isinstance(v, bool)}
    return {"param": param, "reason": first.get("type"), **ctx}

