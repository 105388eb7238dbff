"""Errors into HTTP answers: the one place an exception becomes a JSON error
response with a status, for ``/api``, ``/metrics``, ``/status`` and ``/healthz``.

Owns ``error_response`` (the ``{"error": message}`` body every refusal uses),
the Starlette exception handlers (``ApiError`` and ``SupervisorError`` with
the status they carry, ``HTTPException`` 404/405 with a message naming the
path, and the unexpected-error 500 that is logged with its traceback) and
``unexpected_body`` (the same 500 body, for the raw ASGI dispatch of ``/mcp``).
Must not: decide anything about a request, or answer JSON-RPC (that is
``runtimed.gateway.errors``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from runtimed.errors import ApiError, OAuthError, SupervisorError

log = logging.getLogger("runtimed")
Handler = Callable[[Request, Exception], Awaitable[Response]]


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def refused(request: Request, exc: Exception) -> Response:
    """``ApiError`` and ``SupervisorError``: the status they carry, their message."""
    if isinstance(exc, ApiError):
        return error_response(exc.status, exc.message)
    if isinstance(exc, SupervisorError | OAuthError):
        return error_response(exc.status, str(exc))
    raise exc


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return JSONResponse({"error": f"method {request.method} is not allowed on {request.url.path}"}, status_code=405,
                            headers=exc.headers)
    if exc.status_code == 404:
        return JSONResponse({"error": f"no such endpoint: {request.url.path}"}, status_code=404)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def unexpected_body(exc: BaseException) -> bytes:
    """The 500 body for a bug: names the exception's class only (no message, no traceback)."""
    return b'{"error":"internal error (%s); see the daemon log"}' % type(exc).__name__.encode()


async def unexpected(request: Request, exc: Exception) -> Response:
    # A bug must still answer with something readable; it is logged with its traceback.
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": f"internal error ({type(exc).__name__}); see the daemon log"}, status_code=500)


EXCEPTION_HANDLERS: Mapping[type[Exception], Handler] = {
    ApiError: refused,
    SupervisorError: refused,
    OAuthError: refused,
    HTTPException: http_error,
    Exception: unexpected,
}
