"""Scoped access tokens over HTTP: ``POST /api/tokens``, ``GET /api/tokens``, ``DELETE /api/tokens/{id}``.

Owns the request and answer shapes of these routes: creating a token for an existing profile
(``{"profile", "expiresIn": "30d" | seconds | null, "label"}`` → 201 with the token, the only answer
that ever holds it), the list (ids, profiles, labels, times; no token, no hash) and revocation, each
creation and revocation an event (``token.created``, ``token.revoked``: the id, never the token).
Only the admin reaches them: ``runtimed.http.security`` holds a scoped token to its profile's
endpoint, so ``/api`` is the static token's or a loopback client's. The tokens themselves are
``runtimed.auth.tokens.TokenRegistry``'s, reached through the ``ApiContext``. Must not: keep or log
a token, or check one (that is ``security``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtimed.auth.tokens import MAX_LABEL, TokenRegistry, looks_scoped, parse_lifetime, token_id
from runtimed.errors import ApiError, StoreUnavailable
from runtimed.http.api import read_json
from runtimed.http.context import ApiContext

FIELDS = ("profile", "expiresIn", "label")


class _Handlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @property
    def tokens(self) -> TokenRegistry:
        if self.ctx.tokens is None:
            raise ApiError(404, "this daemon serves no scoped tokens")
        return self.ctx.tokens

    def _endpoint(self, profile: str) -> str:
        return f"{self.ctx.settings.base_url}/mcp/@{profile}"

    def _public(self, rec: Any) -> dict[str, Any]:
        return {**rec.public(), "endpoint": self._endpoint(rec.profile)}

    async def create(self, request: Request) -> JSONResponse:
        tokens = self.tokens
        data = await read_json(request)
        if not isinstance(data, dict):
            raise ApiError(400, 'send a JSON object: {"profile": NAME, "expiresIn": "30d" | seconds | null, '
                                '"label": TEXT | null}')
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ApiError(400, f"unknown field(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
        profile = data.get("profile")
        if not isinstance(profile, str) or not profile:
            raise ApiError(400, "profile is required: the name of the profile the token reaches")
        try:
            lifetime = parse_lifetime(data.get("expiresIn"))
        except ValueError as e:
            raise ApiError(400, str(e)) from None
        label = data.get("label")
        if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL
                                  or any(not c.isprintable() for c in label)):
            raise ApiError(400, f"label must be printable text of at most {MAX_LABEL} characters, or null")
        try:
            exists = await asyncio.to_thread(tokens.profile_exists, profile)
            if not exists:
                raise ApiError(404, f"no profile named {profile!r} (runtimectl profile list shows them)")
            rec, token = await tokens.create(profile, lifetime, label or None)
        except (StoreUnavailable, OSError) as e:
            raise ApiError(503, f"the token could not be stored: {e}") from None
        self.ctx.events.emit("token.created", None, tokenId=rec.id, profile=rec.profile, label=rec.label,
                             expiresAt=rec.expires)
        return JSONResponse({**self._public(rec), "token": token}, status_code=201)

    async def list_tokens(self, request: Request) -> JSONResponse:
        return JSONResponse({"tokens": [self._public(r) for r in self.tokens.records()]})

    async def revoke(self, request: Request) -> JSONResponse:
        tid = request.path_params["id"]
        if looks_scoped(tid):  # the whole token given instead of its id: use its id, never say it back
            found = token_id(tid)
            if found is None:
                raise ApiError(400, "give the token's id (8 hex characters, as runtimectl token list shows it)")
            tid = found
        try:
            rec = await self.tokens.revoke(tid)
        except (StoreUnavailable, OSError) as e:
            raise ApiError(503, f"the token could not be revoked: {e}") from None
        if rec is None:
            raise ApiError(404, f"no scoped token with id {tid!r} (runtimectl token list shows them)")
        self.ctx.events.emit("token.revoked", None, tokenId=rec.id, profile=rec.profile, label=rec.label)
        return JSONResponse({"revoked": rec.id, "profile": rec.profile})


def routes(ctx: ApiContext) -> list[Route]:
    h = _Handlers(ctx)
    return [
        Route("/api/tokens", h.list_tokens, methods=["GET"]),
        Route("/api/tokens", h.create, methods=["POST"]),
        Route("/api/tokens/{id}", h.revoke, methods=["DELETE"]),
    ]
