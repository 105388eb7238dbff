"""The daemon client: ``runtimectl``'s only way to reach ``runtimed``.

Owns the base URL and token (``--url``/``RUNTIMED_URL``,
``--token``/``RUNTIMED_AUTH_TOKEN``), HTTP calls to ``/api``, and turning
every transport failure into one readable sentence. Must not print or exit:
the commands decide how to show results.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from runtimed.errors import ClientError, DaemonError, DaemonUnavailable

DEFAULT_URL = "http://127.0.0.1:4707"


def resolve_url(url: str | None) -> str:
    return (url or os.environ.get("RUNTIMED_URL") or DEFAULT_URL).rstrip("/")


def resolve_token(token: str | None) -> str | None:
    return token or os.environ.get("RUNTIMED_AUTH_TOKEN") or None


class DaemonClient:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 60.0) -> None:
        self.url = resolve_url(url)
        self.token = resolve_token(token)
        self.timeout = timeout
        # The HTTP status of the last answer (a 201 from a POST: created; 200: replaced).
        self.last_status: int | None = None
        if not self.url.startswith(("http://", "https://")):
            raise ClientError(f"--url must be an http(s) URL, not {self.url!r}")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        headers = dict(self.headers)
        if method.upper() not in ("GET", "HEAD"):
            # The daemon refuses changes not marked as JSON, body or not (no cross-site simple requests).
            headers["Content-Type"] = "application/json"
        try:
            r = httpx.request(method, self.url + path, json=json, params=params, headers=headers,
                              timeout=timeout or self.timeout)
        except httpx.ConnectError:
            raise DaemonUnavailable(
                f"runtimed is not running at {self.url} (start it with: runtimectl daemon start, or runtimed in a shell of its own; or point --url/RUNTIMED_URL at it)"
            ) from None
        except httpx.TimeoutException:
            raise DaemonUnavailable(f"runtimed at {self.url} did not answer in time") from None
        except httpx.HTTPError as e:
            raise DaemonUnavailable(f"cannot talk to runtimed at {self.url}: {e}") from None
        self.last_status = r.status_code
        body: Any
        try:
            body = r.json()
        except ValueError:
            body = None
        if r.status_code >= 400:
            message = body["error"] if isinstance(body, dict) and body.get("error") else r.text.strip()
            if r.status_code == 401:
                message += " (set --token or RUNTIMED_AUTH_TOKEN)"
            raise DaemonError(r.status_code, message or f"HTTP {r.status_code}")
        if body is None:
            raise ClientError(f"runtimed at {self.url} answered with something that is not JSON (is it runtimed?)")
        return body

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.request("DELETE", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.request("PATCH", path, **kw)
