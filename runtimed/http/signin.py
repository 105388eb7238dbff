"""Signing in to OAuth-protected upstreams over HTTP: the sign-in API, the browser's callback and the
gateway's Client ID Metadata Document.

Owns the routes:

- ``GET /api/services/{name}/auth``: the sign-in's status (``auth.upstream.UpstreamAuth.status``:
  never a token);
- ``POST /api/services/{name}/auth/login``: starts a sign-in; answers the URL to open
  (``authorization_code``), or gets a token at once (``client_credentials``) and restarts the service;
- ``DELETE /api/services/{name}/auth``: signs out (revocation, best effort) and stops the service;
- ``GET /oauth/callback``: where the authorization server sends the browser back; the ``state`` it
  carries was made by this daemon and is used once (``SecurityMiddleware`` lets it through without
  the daemon's token: the state is the proof); answers a small HTML page, never a code or token;
- ``GET /oauth/client-metadata.json``: the Client ID Metadata Document, when ``public_url`` is https.

Must not: hold OAuth logic (``runtimed.auth``), or put a code, token or secret in an answer or a log.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from runtimed.auth.upstream import CALLBACK_PATH, CLIENT_METADATA_PATH, UpstreamAuth
from runtimed.errors import ApiError, OAuthError, SignInRequired
from runtimed.http.context import ApiContext
from runtimed.lifecycle.service import ServiceRuntime, State


def _auth_of(ctx: ApiContext, svc: ServiceRuntime) -> UpstreamAuth:
    if getattr(svc.manifest.spec.origin, "authRef", None) != "oauth":
        raise ApiError(409, f"service {svc.name!r} does not sign in with OAuth (its authRef is not \"oauth\"); "
                            f"runtimectl set {svc.name} --auth oauth makes it")
    return svc.upstream_auth()


def _page(title: str, message: str, ok: bool, status: int = 200) -> HTMLResponse:
    body = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            "<meta name=\"viewport\" content=\"width=device-width\"></head><body style=\"font-family: sans-serif; "
            "max-width: 40em; margin: 3em auto\">"
            f"<h1 id=\"result\" data-ok=\"{'true' if ok else 'false'}\">{html.escape(title)}</h1>"
            f"<p id=\"message\">{html.escape(message)}</p><p><a href=\"/status\">The status page</a></p></body></html>")
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def routes(ctx: ApiContext) -> list[Route]:
    sup = ctx.supervisor

    async def status(request: Request) -> JSONResponse:
        svc = sup.get(request.path_params["name"])
        return JSONResponse(await _auth_of(ctx, svc).status())

    async def login(request: Request) -> JSONResponse:
        svc = sup.get(request.path_params["name"])
        auth = _auth_of(ctx, svc)
        if auth.options.grant == "client_credentials":
            try:
                await auth.ensure()
            except SignInRequired as e:
                raise ApiError(502, str(e)) from None
            if svc.state != State.QUARANTINED and svc.manifest.spec.enabled:
                await sup.restart(svc.id, reason="signed in")
            return JSONResponse({**await auth.status(), "url": None})
        url = await auth.begin()
        return JSONResponse({"service": svc.name, "url": url, "redirectUri": sup.sign_ins.redirect_uri(),
                             "expiresInSeconds": 600})

    async def logout(request: Request) -> JSONResponse:
        svc = sup.get(request.path_params["name"])
        revoked = await _auth_of(ctx, svc).logout()
        return JSONResponse({**await svc.upstream_auth().status(), "revoked": revoked})

    async def callback(request: Request) -> Response:
        params = {k: v for k, v in request.query_params.items()}
        try:
            service_id = await sup.sign_ins.callback(params)
        except OAuthError as e:
            return _page("Sign-in failed", str(e), ok=False, status=400)
        svc = sup.find(service_id)
        name = svc.name if svc is not None else service_id
        return _page(f"Signed in to {name}", f"The gateway is signed in to {name!r} and starts it now. "
                                             "You can close this window.", ok=True)

    async def client_metadata(request: Request) -> Response:
        doc = sup.sign_ins.client_metadata()
        if doc is None:
            return JSONResponse({"error": "this gateway has no https public_url, so it serves no Client ID Metadata "
                                          "Document"}, status_code=404)
        return JSONResponse(doc, headers={"Cache-Control": "max-age=300"})

    return [
        Route("/api/services/{name}/auth", status, methods=["GET"]),
        Route("/api/services/{name}/auth", logout, methods=["DELETE"]),
        Route("/api/services/{name}/auth/login", login, methods=["POST"]),
        Route(CALLBACK_PATH, callback, methods=["GET"]),
        Route(CLIENT_METADATA_PATH, client_metadata, methods=["GET"]),
    ]
