"""The REST API of profiles: ``/api/profiles``.

Owns the handlers of ``GET /api/profiles`` (every profile: name, description, mode, pinTools,
its endpoint ``<base>/mcp/@NAME``, how many tools it serves, its manifest), ``GET
/api/profiles/{name}`` (the same, plus the tools it serves: the name shown, the original name on
``/mcp``, the service), ``POST /api/profiles`` (a manifest of kind ``MCPProfile``: 201 created,
200 replaced; 400 with what does not validate) and ``DELETE /api/profiles/{name}`` (404 when
unknown). Every refusal is an ``ApiError`` (``{"error": message}``, ``http.errors``); a store
that cannot keep a change is a 503. Must not: keep profiles (``runtimed.profiles``) or decide what
a profile serves (``runtimed.gateway``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from runtimed.config.profile import ProfileManifest, parse_profile
from runtimed.errors import ApiError, ManifestError, StoreUnavailable
from runtimed.http.api import read_json
from runtimed.http.context import ApiContext
from runtimed.profiles.registry import ProfileRegistry


class _Handlers:
    def __init__(self, ctx: ApiContext) -> None:
        self.ctx = ctx

    @property
    def registry(self) -> ProfileRegistry:
        if self.ctx.profiles is None:
            raise ApiError(404, "this daemon serves no profiles")
        return self.ctx.profiles

    def _summary(self, manifest: ProfileManifest, tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        if tools is None:
            tools = self.ctx.profile_tools(manifest.name) or []
        return {"name": manifest.name, "description": manifest.metadata.description, "mode": manifest.spec.mode,
                "pinTools": manifest.spec.pinTools,
                "endpoint": f"{self.ctx.settings.base_url}/mcp/@{manifest.name}",
                "toolCount": len(tools), "manifest": manifest.public_dict()}

    def _find(self, name: str) -> ProfileManifest:
        found = self.registry.get(name)
        if found is None:
            known = ", ".join(self.registry.names()) or "none"
            raise ApiError(404, f"no profile named {name!r} (profiles: {known})")
        return found

    async def list_profiles(self, request: Request) -> JSONResponse:
        return JSONResponse({"profiles": [self._summary(m) for m in self.registry.all()]})

    async def get_profile(self, request: Request) -> JSONResponse:
        manifest = self._find(request.path_params["name"])
        tools = self.ctx.profile_tools(manifest.name) or []
        return JSONResponse({**self._summary(manifest, tools), "tools": tools})

    async def save_profile(self, request: Request) -> JSONResponse:
        registry = self.registry
        data = await read_json(request)
        try:
            manifest = parse_profile(data)
        except ManifestError as e:
            raise ApiError(400, f"invalid profile: {e}") from None
        try:
            created = await registry.save(manifest)
        except (OSError, StoreUnavailable) as e:
            raise ApiError(503, f"the profile could not be saved: {e}") from None
        return JSONResponse({"profile": self._summary(manifest)}, status_code=201 if created else 200)

    async def delete_profile(self, request: Request) -> JSONResponse:
        registry = self.registry
        name = request.path_params["name"]
        try:
            removed = await registry.remove(name)
        except (OSError, StoreUnavailable) as e:
            raise ApiError(503, f"the profile could not be removed: {e}") from None
        if not removed:
            known = ", ".join(registry.names()) or "none"
            raise ApiError(404, f"no profile named {name!r} (profiles: {known})")
        return JSONResponse({"removed": name})


def routes(ctx: ApiContext) -> list[Route]:
    h = _Handlers(ctx)
    return [
        Route("/api/profiles", h.list_profiles, methods=["GET"]),
        Route("/api/profiles", h.save_profile, methods=["POST", "PUT"]),
        Route("/api/profiles/{name}", h.get_profile, methods=["GET"]),
        Route("/api/profiles/{name}", h.delete_profile, methods=["DELETE"]),
    ]
