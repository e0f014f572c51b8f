"""Every API error has one shape: ``{"error": "<code>", "detail": ..., "fields": {...}}``.

``fields`` appears on validation failures and maps a field path
(``processes[3].pid``) to its messages. The Django-level handlers below give
the same shape to requests that never reach a view (unknown URL, bad Host
header), so a client never has to parse an HTML error page.
"""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import exceptions, status
from rest_framework.views import exception_handler as drf_exception_handler


class InvalidPayload(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_payload"
    default_detail = "The snapshot is not valid."

    def __init__(self, detail: str, fields: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.fields = fields or {}


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The body is larger than the server accepts."


class DayFileFull(exceptions.APIException):
    """413: permanent for this snapshot, so the agent sets it aside (agent/sender.py) instead of retrying."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "day_file_full"
    default_detail = "The day file of this address is full."


class InvalidParameters(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_parameters"
    default_detail = "The query parameters are not valid."

    def __init__(self, detail: str, fields: dict[str, list[str]] | None = None):
        super().__init__(detail)
        self.fields = fields or {}


class NothingStored(exceptions.NotFound):
    default_code = "not_found"


_CODES = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_body",
    exceptions.ValidationError: "invalid_parameters",
}


def _code(exc: exceptions.APIException) -> str:
    """DRF's own exceptions get the table's code; Relevo's subclasses name their own."""
    if type(exc) not in _CODES and "default_code" in type(exc).__dict__:
        return type(exc).default_code
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return getattr(exc, "default_code", "error")


def exception_handler(exc, context):
    """DRF's handler, reshaped; anything DRF does not know stays a 500 (and is logged)."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {"error": "invalid_parameters", "detail": "The request is not valid.", "fields": exc.detail}
    elif isinstance(exc, exceptions.APIException):
        code = _code(exc)
        body = {"error": code, "detail": str(exc.detail)}
        fields = getattr(exc, "fields", None)
        if fields:
            body["fields"] = fields
    else:
        body = {"error": "error", "detail": response.data}
    response.data = body
    return response


def _json_error(code: str, detail: str, status_code: int) -> JsonResponse:
    return JsonResponse({"error": code, "detail": detail}, status=status_code)


def bad_request(request, exception=None):
    return _json_error("bad_request", "The request could not be understood.", 400)


def permission_denied(request, exception=None):
    return _json_error("permission_denied", "You do not have permission to do this.", 403)


def not_found(request, exception=None):
    return _json_error("not_found", "No such resource.", 404)


def server_error(request):
    return _json_error("server_error", "The server failed; the error has been logged.", 500)
