"""The gateway signed in to protected remote MCP servers: one ``UpstreamAuth`` per service whose
``authRef`` is ``oauth``, kept by ``SignIns`` (one per daemon).

Owns, per service:

- the sign-in record (the authorization server found, the client registration, the tokens),
  loaded from and saved through the ``Keeper`` (the state store: a 0600 file, or Redis), and never
  shown: ``status()`` is what the API, the page and the CLI see;
- ``begin`` (discovery from the server's 401 or its well-known metadata, registration, PKCE, the
  authorization URL; the pending flow is kept by ``state`` for ``FLOW_TTL_S``) and ``complete``
  (the callback: ``state``, RFC 9207 ``iss``, the code exchange);
- ``ensure``: the headers of the next request, refreshing the access token before it expires
  (``Tokens.refresh_margin``) or getting one with the client-credentials grant; a refresh that is
  refused drops the tokens and raises ``SignInRequired`` (what to run), and tells ``on_signed_out``;
- ``refused``: the upstream answered 401 to a token: one forced refresh, else ``SignInRequired``;
- ``logout``: revocation (RFC 7009, best effort) and the tokens dropped.

``SignIns`` owns the ``UpstreamAuth`` objects (by service id, rebuilt when the options change), the
lookup of a callback's pending flow, and the client metadata document (CIMD) this daemon serves.

Must not: put a token, code, verifier or secret in a message, a log line, an event or ``status()``;
pass a downstream client's token anywhere (it never sees one); decide lifecycle (the supervisor
is told through ``on_signed_in``/``on_signed_out``).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from runtimed import __version__
from runtimed.auth import client as oauth
from runtimed.auth.metadata import authorization_server, parse_challenge, protected_resource
from runtimed.errors import OAuthError, SignInRequired
from runtimed.protocol.types import JSON

FLOW_TTL_S = 600.0
SERVER_KEYS = ("issuer", "authorization_endpoint", "token_endpoint", "revocation_endpoint", "registration_endpoint",
               "code_challenge_methods_supported", "authorization_response_iss_parameter_supported",
               "client_id_metadata_document_supported", "token_endpoint_auth_methods_supported")
CALLBACK_PATH = "/oauth/callback"
CLIENT_METADATA_PATH = "/oauth/client-metadata.json"
CLIENT_NAME = "MCP Runtime gateway (runtimed)"


class Keeper(Protocol):
    """Where sign-in records and pending flows are kept (the state store implements it)."""

    def load_credentials(self, service_id: str) -> JSON | None: ...

    def save_credentials(self, service_id: str, record: JSON | None) -> None: ...

    async def save_flow(self, state: str, record: JSON, ttl_s: float) -> None: ...

    async def take_flow(self, state: str) -> JSON | None: ...


@dataclass(frozen=True)
class Options:
    """A service's ``oauth`` options (``config.manifest.OAuthOptions``) as the flow uses them."""

    grant: str = "authorization_code"
    client_id: str | None = None
    client_secret_ref: str | None = None
    scopes: tuple[str, ...] | None = None

    @classmethod
    def of(cls, origin: Any) -> Options:
        o = getattr(origin, "oauth", None)
        if o is None:
            return cls()
        return cls(o.grant, o.clientId, o.clientSecretRef, tuple(o.scopes) if o.scopes is not None else None)


def sign_in_hint(name: str) -> str:
    return f"run `runtimectl auth login {name}` (or Sign in on its status page)"


class UpstreamAuth:
    """One service's sign-in. ``name`` may change (rename); ``service_id`` does not."""

    def __init__(self, owner: SignIns, service_id: str, name: str, url: str, options: Options) -> None:
        self.owner = owner
        self.service_id = service_id
        self.name = name
        self.url = url
        self.options = options
        self._record: JSON | None = None
        self._loaded = False
        self._lock = asyncio.Lock()
        self.reason: str | None = None  # why the last sign-in ended (refused refresh, sign-out)

    # -- the record -------------------------------------------------------------------------------
    async def _load(self) -> JSON:
        if not self._loaded:
            record = await asyncio.to_thread(self.owner.keeper.load_credentials, self.service_id)
            self._record = record if isinstance(record, dict) and record.get("resource") == self.url else None
            self._loaded = True
        if self._record is None:
            self._record = {"resource": self.url}
        return self._record

    async def _save(self) -> None:
        await asyncio.to_thread(self.owner.keeper.save_credentials, self.service_id, self._record)

    def reload(self) -> None:
        """Read the record again at the next use (another replica may have changed it)."""
        self._loaded = False

    def _tokens(self) -> oauth.Tokens | None:
        raw = (self._record or {}).get("tokens")
        try:
            return oauth.Tokens.from_json(raw) if isinstance(raw, dict) else None
        except (KeyError, TypeError, ValueError):
            return None

    def _registration(self) -> oauth.Registration | None:
        raw = (self._record or {}).get("client")
        try:
            return oauth.Registration.from_json(raw) if isinstance(raw, dict) else None
        except (KeyError, TypeError, ValueError):
            return None

    # -- requests ---------------------------------------------------------------------------------
    def _needs_sign_in(self, why: str) -> SignInRequired:
        return SignInRequired(f"service {self.name!r} {why}: {sign_in_hint(self.name)}")

    async def ensure(self) -> dict[str, str]:
        """The Authorization header of the next request, fresh: refreshed before expiry, got with the
        client-credentials grant when that is the service's grant. ``SignInRequired`` otherwise."""
        record = self._record if self._loaded else None
        tokens = self._tokens() if record is not None else None
        if tokens is not None and not tokens.expires_within(tokens.refresh_margin()):
            return {"Authorization": "Bearer " + tokens.access_token}
        async with self._lock:
            self._loaded = False  # another replica may have refreshed it: read what is kept
            await self._load()
            tokens = self._tokens()
            if tokens is not None and not tokens.expires_within(tokens.refresh_margin()):
                return {"Authorization": "Bearer " + tokens.access_token}
            if self.options.grant == "client_credentials":
                tokens = await self._client_credentials()
            elif tokens is not None and tokens.refresh_token:
                tokens = await self._refresh(tokens)
            elif tokens is not None and not tokens.expires_within(0):
                return {"Authorization": "Bearer " + tokens.access_token}  # no refresh token: use it to the end
            elif tokens is not None:
                await self._signed_out("has an expired sign-in and no refresh token")
                raise self._needs_sign_in("has an expired sign-in and no refresh token")
            else:
                raise self._needs_sign_in("is not signed in" if self.reason is None else f"is not signed in ({self.reason})")
            return {"Authorization": "Bearer " + tokens.access_token}

    async def refused(self, sent: dict[str, str]) -> bool:
        """The upstream answered 401/403 to ``sent``: True when a new token is worth one more try (a
        refresh or a client-credentials token); otherwise the sign-in is dropped and
        ``SignInRequired`` raised."""
        async with self._lock:
            self._loaded = False
            await self._load()
            tokens = self._tokens()
            if tokens is not None and sent.get("Authorization") != "Bearer " + tokens.access_token:
                return True  # another request renewed it meanwhile
            if self.options.grant == "client_credentials":
                await self._client_credentials()
                return True
            if tokens is not None and tokens.refresh_token:
                await self._refresh(tokens)
                return True
            await self._signed_out("was refused by the server (its token is no longer accepted)")
            raise self._needs_sign_in("was refused by the server (its token is no longer accepted)")

    async def _refresh(self, tokens: oauth.Tokens) -> oauth.Tokens:
        assert tokens.refresh_token is not None
        server, registration = (self._record or {}).get("server"), self._registration()
        if not isinstance(server, dict) or registration is None:
            await self._signed_out("has an unusable sign-in record")
            raise self._needs_sign_in("has an unusable sign-in record")
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token, "resource": self.url}
        try:
            async with oauth.new_client() as http:
                fresh = await oauth.token_request(http, server, registration, form, "refreshing the token")
        except OAuthError as e:
            if e.error in ("invalid_grant", "invalid_client", "unauthorized_client", "invalid_scope"):
                why = f"could not refresh its sign-in ({e.error}: the refresh token expired or was revoked)"
                await self._signed_out(why)
                raise self._needs_sign_in(why) from None
            raise SignInRequired(f"service {self.name!r}: {e}; its sign-in is kept and refreshing is tried again at "
                                 "the next call") from None
        if fresh.refresh_token is None:
            fresh.refresh_token = tokens.refresh_token  # the server kept the old one (no rotation)
        if fresh.scope is None:
            fresh.scope = tokens.scope
        await self._keep(fresh)
        self.owner.log(self.service_id, "info", "refreshed the OAuth access token")
        return fresh

    async def _client_credentials(self) -> oauth.Tokens:
        try:
            async with oauth.new_client() as http:
                server, registration = await self._prepare(http)
                form = {"grant_type": "client_credentials", "resource": self.url}
                scope = self._scope()
                if scope:
                    form["scope"] = scope
                tokens = await oauth.token_request(http, server, registration, form, "the client-credentials grant")
        except OAuthError as e:
            raise SignInRequired(f"service {self.name!r} could not get a token with its client credentials: {e}") from None
        await self._keep(tokens)
        self.owner.log(self.service_id, "info", "got an OAuth access token with the client-credentials grant")
        return tokens

    async def _keep(self, tokens: oauth.Tokens) -> None:
        assert self._record is not None
        self._record["tokens"] = tokens.to_json()
        self.reason = None
        self._record.pop("reason", None)
        await self._save()

    async def _signed_out(self, why: str) -> None:
        if self._record is not None:
            self._record.pop("tokens", None)
            self._record["reason"] = why
            await self._save()
        self.reason = why
        self.owner.signed_out(self.service_id, f"{why}: {sign_in_hint(self.name)}")

    # -- discovery and registration -----------------------------------------------------------------
    def _scope(self) -> str | None:
        if self.options.scopes is not None:
            return " ".join(self.options.scopes) or None
        scope = (self._record or {}).get("scope")
        return scope if isinstance(scope, str) and scope else None

    async def _discover(self, http: httpx.AsyncClient) -> JSON:
        """The authorization server of this service: from the ``WWW-Authenticate`` of its 401 (RFC 9728
        §5.1), else its well-known Protected Resource Metadata."""
        challenge: dict[str, str] = {}
        body = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "mcp-runtimed", "version": __version__}}}
        try:
            r = await http.post(self.url, json=body, headers={"Accept": "application/json, text/event-stream"})
            if r.status_code in (401, 403):
                challenge = parse_challenge(r.headers.get("www-authenticate", ""))
            await r.aclose()
        except httpx.HTTPError as e:
            raise OAuthError(f"{self.url} cannot be reached ({type(e).__name__})") from None
        resource = await protected_resource(http, self.url, challenge.get("resource_metadata"))
        issuer = resource["authorization_servers"][0]
        server = await authorization_server(http, issuer)
        scope = challenge.get("scope")
        if not scope and isinstance(resource.get("scopes_supported"), list):
            scope = " ".join(s for s in resource["scopes_supported"] if isinstance(s, str))
        record = await self._load()
        record["server"] = {k: server[k] for k in SERVER_KEYS if k in server}
        record["issuer"] = issuer
        record["scope"] = scope or None
        await self._save()
        return record["server"]  # type: ignore[no-any-return]

    async def _prepare(self, http: httpx.AsyncClient) -> tuple[JSON, oauth.Registration]:
        """The authorization server and the client registration, found or made (and saved)."""
        record = await self._load()
        server = record.get("server")
        if not isinstance(server, dict):
            server = await self._discover(http)
        registration = self._registration()
        redirect_uri = self.owner.redirect_uri()
        wanted = "configured" if self.options.client_id else None
        if registration is None or (wanted == "configured") != (registration.method == "configured") or (
                registration.method == "configured" and registration.client_id != self.options.client_id) or (
                registration.method != "configured" and registration.redirect_uri != redirect_uri):
            secret = self.owner.secret(self.options.client_secret_ref, self.name) if self.options.client_secret_ref else None
            registration = await oauth.register(
                http, server, redirect_uri, client_name=CLIENT_NAME, configured_id=self.options.client_id,
                configured_secret=secret, metadata_url=self.owner.client_metadata_url(), grant=self.options.grant,
                scope=self._scope())
            record["client"] = registration.to_json()
            await self._save()
            if registration.method != "configured":
                self.owner.log(self.service_id, "info", f"registered with {server.get('issuer')} "
                                                        f"({'Client ID Metadata Document' if registration.method == 'cimd' else 'dynamic client registration'})")
        elif registration.method == "configured" and self.options.client_secret_ref:
            registration.client_secret = self.owner.secret(self.options.client_secret_ref, self.name)
        return server, registration

    # -- the authorization-code flow ----------------------------------------------------------------
    async def begin(self) -> str:
        """The URL the user opens to sign in; the flow waits for the callback for ``FLOW_TTL_S``."""
        async with self._lock:
            async with oauth.new_client() as http:
                record = await self._load()
                record.pop("server", None)  # discover afresh: the server may have moved
                server, registration = await self._prepare(http)
            verifier, challenge = oauth.pkce()
            state = secrets.token_urlsafe(32)
            url = oauth.authorize_url(server, registration, redirect_uri=self.owner.redirect_uri(), state=state,
                                      challenge=challenge, resource=self.url, scope=self._scope())
            await self.owner.keeper.save_flow(state, {
                "service": self.service_id, "verifier": verifier, "issuer": server.get("issuer"),
                "redirect_uri": self.owner.redirect_uri(), "started": time.time()}, FLOW_TTL_S)
            self.owner.log(self.service_id, "info", f"sign-in started at {server.get('issuer')}")
            return url

    async def complete(self, flow: JSON, code: str, iss: str | None) -> None:
        async with self._lock:
            self._loaded = False  # the flow may have been begun by another replica: read what it kept
            record = await self._load()
            server, registration = record.get("server"), self._registration()
            if not isinstance(server, dict) or registration is None or server.get("issuer") != flow.get("issuer"):
                raise OAuthError("this sign-in was started with another authorization server; start it again", status=400)
            oauth.check_issuer(server, str(flow.get("issuer")), iss)
            if registration.method == "configured" and self.options.client_secret_ref:
                registration.client_secret = self.owner.secret(self.options.client_secret_ref, self.name)
            form = {"grant_type": "authorization_code", "code": code, "redirect_uri": str(flow["redirect_uri"]),
                    "code_verifier": str(flow["verifier"]), "resource": self.url}
            async with oauth.new_client() as http:
                tokens = await oauth.token_request(http, server, registration, form, "exchanging the authorization code")
            record["signedInAt"] = time.time()
            await self._keep(tokens)
            self.owner.log(self.service_id, "info", f"signed in at {server.get('issuer')}")

    async def logout(self) -> bool:
        """Revoke (best effort) and forget the tokens; True when the server confirmed a revocation."""
        async with self._lock:
            record = await self._load()
            tokens, server, registration = self._tokens(), record.get("server"), self._registration()
            revoked = False
            if tokens is not None and isinstance(server, dict) and registration is not None:
                async with oauth.new_client() as http:
                    if tokens.refresh_token:
                        revoked = await oauth.revoke(http, server, registration, tokens.refresh_token, "refresh_token")
                    revoked = await oauth.revoke(http, server, registration, tokens.access_token, "access_token") or revoked
            record.pop("tokens", None)
            record["reason"] = "signed out"
            await self._save()
            self.reason = "signed out"
            self.owner.log(self.service_id, "info", "signed out" + (" (the server revoked the tokens)" if revoked else ""))
            self.owner.signed_out(self.service_id, f"signed out: {sign_in_hint(self.name)}")
            return revoked

    async def status(self) -> JSON:
        """What may be shown: never a token, a secret or a code."""
        await self._load()
        return self.shown()

    def status_now(self) -> JSON:
        """``status()`` without awaiting (the page's fragments are rendered synchronously): the record
        is read now if it was not yet (a small file, or one Redis read)."""
        if not self._loaded:
            try:
                record = self.owner.keeper.load_credentials(self.service_id)
            except Exception:  # a store that cannot be read: shown as not signed in
                record = None
            self._record = record if isinstance(record, dict) and record.get("resource") == self.url else None
            self._loaded = True
        if self._record is None:
            self._record = {"resource": self.url}
        return self.shown()

    def shown(self) -> JSON:
        record = self._record or {}
        tokens, registration = self._tokens(), self._registration()
        found = record.get("server")
        server: JSON = found if isinstance(found, dict) else {}
        now = time.time()
        if tokens is None:
            state = "signed-out"
        elif tokens.expires_within(0, now) and not tokens.refresh_token and self.options.grant != "client_credentials":
            state = "expired"
        else:
            state = "signed-in"
        return {
            "service": self.name, "grant": self.options.grant, "state": state, "signedIn": state == "signed-in",
            "issuer": record.get("issuer") or server.get("issuer"), "resource": self.url,
            "clientId": registration.client_id if registration else None,
            "registration": registration.method if registration else None,
            "scope": (tokens.scope if tokens else None) or self._scope(),
            "expiresAt": tokens.expires_at if tokens else None,
            "refreshable": bool(tokens and tokens.refresh_token) or self.options.grant == "client_credentials",
            "signedInAt": record.get("signedInAt") if tokens else None,
            "reason": None if tokens else (record.get("reason") or self.reason),
            "login": None if self.options.grant == "client_credentials" else f"runtimectl auth login {self.name}",
        }

    def sent_values(self) -> set[str]:
        """The token values this object may have sent (for the backend's secret mask)."""
        tokens = self._tokens()
        return {tokens.access_token} if tokens else set()


class SignIns:
    """Every service's ``UpstreamAuth``, the pending flows' lookup and the daemon's OAuth client facts.

    ``base_url``: this daemon's address as a browser reaches it (the redirect URI is
    ``base_url + CALLBACK_PATH``); ``public_url``: an https address of this daemon, when it has one,
    where the Client ID Metadata Document is served. ``secret(ref, name)`` reads a client secret
    reference; ``on_signed_in``/``on_signed_out`` tell the supervisor; ``log`` writes to a
    service's log."""

    def __init__(self, keeper: Keeper, base_url: str, *, public_url: str | None = None,
                 secret: Callable[[str, str], str],
                 log: Callable[[str, str, str], None] = lambda _id, _level, _msg: None) -> None:
        self.keeper = keeper
        self.base_url = base_url.rstrip("/")
        self.public_url = public_url.rstrip("/") if public_url else None
        self._secret = secret
        self._log = log
        self.on_signed_in: Callable[[str], Awaitable[None]] | None = None
        self.on_signed_out: Callable[[str, str], None] | None = None
        self._auths: dict[str, UpstreamAuth] = {}

    def redirect_uri(self) -> str:
        return (self.public_url or self.base_url) + CALLBACK_PATH

    def client_metadata_url(self) -> str | None:
        """The CIMD client id: only with an https address (the spec requires one)."""
        if self.public_url and self.public_url.startswith("https://"):
            return self.public_url + CLIENT_METADATA_PATH
        return None

    def client_metadata(self) -> JSON | None:
        url = self.client_metadata_url()
        if url is None:
            return None
        return {"client_id": url, "client_name": CLIENT_NAME, "client_uri": self.public_url,
                "redirect_uris": [self.redirect_uri()], "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"], "token_endpoint_auth_method": "none", "application_type": "web"}

    def secret(self, ref: str, name: str) -> str:
        try:
            return self._secret(ref, name)
        except Exception as e:  # the resolver's own error says what is missing, never the value
            raise OAuthError(f"service {name!r}: the OAuth client secret cannot be read: {e}", status=400) from None

    def log(self, service_id: str, level: str, message: str) -> None:
        self._log(service_id, level, message)

    def signed_out(self, service_id: str, reason: str) -> None:
        if self.on_signed_out is not None:
            self.on_signed_out(service_id, reason)

    def get(self, service_id: str, name: str, origin: Any) -> UpstreamAuth:
        """The sign-in of the service ``service_id`` whose origin is ``origin`` (a remote origin with
        ``authRef: "oauth"``); a changed URL or options make a new one (the old record is not used)."""
        options = Options.of(origin)
        auth = self._auths.get(service_id)
        if auth is None or auth.url != origin.url or auth.options != options:
            auth = UpstreamAuth(self, service_id, name, origin.url, options)
            self._auths[service_id] = auth
        auth.name = name
        return auth

    def peek(self, service_id: str) -> UpstreamAuth | None:
        return self._auths.get(service_id)

    def forget(self, service_id: str) -> None:
        """The service was removed: its record goes too."""
        self._auths.pop(service_id, None)
        try:
            self.keeper.save_credentials(service_id, None)
        except Exception:
            pass

    async def callback(self, params: dict[str, str]) -> str:
        """The authorization response (the redirect's query): the signed-in service's id. ``OAuthError``
        (status 400) for an unknown or expired ``state``, an error answer, an ``iss`` mismatch."""
        state = params.get("state")
        if not state:
            raise OAuthError("the sign-in response has no state: it was not started by this gateway", status=400)
        flow = await self.keeper.take_flow(state)
        if flow is None:
            raise OAuthError("this sign-in is unknown or expired (it is valid for 10 minutes and once): start it again "
                             "with runtimectl auth login", status=400)
        auth = self._auths.get(str(flow.get("service")))
        if auth is None:
            raise OAuthError("the service of this sign-in is no longer registered", status=400)
        if params.get("error"):
            description = params.get("error_description", "")
            raise OAuthError(f"the authorization server refused the sign-in to {auth.name!r}: {params['error']}"
                             + (f" ({description[:300]})" if description else ""), error=params["error"], status=400)
        code = params.get("code")
        if not code:
            raise OAuthError("the sign-in response has no authorization code", status=400)
        await auth.complete(flow, code, params.get("iss"))
        if self.on_signed_in is not None:
            await self.on_signed_in(auth.service_id)
        return auth.service_id
