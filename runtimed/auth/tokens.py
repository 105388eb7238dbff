"""Scoped access tokens: bearer tokens that reach one profile's endpoint (``/mcp/@NAME``) and nothing else.

Owns the token format, ``rtk_<id>_<secret>`` (``id``: 8 hex characters, shown in lists and recorded
on call records; ``secret``: 32 random bytes, URL-safe base64), what is kept of a token (its id, the
SHA-256 of the whole token, the profile, when it was created, when it expires, a label; never the
token), parsing a lifetime (``30d``, ``12h``, seconds), and ``TokenRegistry``: creating, listing and
revoking tokens, and ``authenticate`` (a presented token into the ``Principal`` it names, or an
``AuthFailure``: unknown, revoked, expired), compared in constant time.

Persistence is given to the registry as two blocking callables (``load()``: every document of the
store's ``tokens`` collection; ``save(key, doc | None)``), so this module never imports the store.
In that collection, key ``<id>`` holds a token (written at creation, removed at revocation, never
rewritten), and ``<id>.used`` its last use (best effort, written at most once a minute per replica):
a late last-use write can never bring back a revoked token. Every write goes through one lock (the
embedded store rewrites its whole file). Other replicas' changes arrive through ``on_change``; a
well-formed token this replica does not know makes it read the store again (at most once a second),
for a token created a moment ago on another replica.

Must not: keep, log or return a token after ``create`` answered it, decide which paths a token
reaches (``runtimed.http.security``) or serve HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtimed.auth.resource import AuthFailure, Principal
from runtimed.protocol.types import JSON

log = logging.getLogger("runtimed")

PREFIX = "rtk_"
KIND = "profile-token"  # Principal.kind of a request made with a scoped token
ID_HEX = 8
SECRET_BYTES = 32
USED_SUFFIX = ".used"
USED_EVERY_S = 60.0  # lastUsed is written at most this often per token (and replica)
MISS_RELOAD_S = 1.0  # an unknown token id reads the store again at most this often
MAX_LIFETIME_S = 10 * 366 * 86400
MAX_LABEL = 200
_ID_RE = re.compile(r"^[0-9a-f]{8}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

Load = Callable[[], dict[str, JSON]]
Save = Callable[[str, JSON | None], None]


def looks_scoped(token: str) -> bool:
    """Whether a bearer value is meant as a scoped token (its prefix), well-formed or not."""
    return token.startswith(PREFIX)


def token_id(token: str) -> str | None:
    """The id of a well-formed scoped token; None for anything else."""
    if len(token) != len(PREFIX) + ID_HEX + 1 + 43 or not token.startswith(PREFIX) or token[len(PREFIX) + ID_HEX] != "_":
        return None
    tid, secret = token[len(PREFIX):len(PREFIX) + ID_HEX], token[len(PREFIX) + ID_HEX + 1:]
    return tid if _ID_RE.match(tid) and _SECRET_RE.match(secret) else None


def digest(token: str) -> str:
    """What is kept of a token: the hex SHA-256 of all of it (the secret is 256 random bits: no salt or
    stretching needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def mint(taken: set[str] | frozenset[str] = frozenset()) -> tuple[str, str]:
    """A new ``(id, token)``; the id is not one of ``taken``."""
    while True:
        tid = secrets.token_hex(ID_HEX // 2)
        if tid not in taken:
            return tid, f"{PREFIX}{tid}_{secrets.token_urlsafe(SECRET_BYTES)}"


def parse_lifetime(value: Any) -> float | None:
    """A lifetime in seconds from ``None`` (never expires), a number of seconds, or a string: digits with
    an optional unit ``s``, ``m``, ``h``, ``d``, ``w`` (``"30d"``). Raises ``ValueError`` saying why not."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expiresIn must be a duration such as \"30d\", \"12h\", a number of seconds, or null")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        m = _DURATION_RE.match(value.lower())
        if m is None:
            raise ValueError(f"expiresIn {value!r} is not a duration: write a number with s, m, h, d or w "
                             "(\"30d\", \"12h\", \"90m\"), or a number of seconds")
        seconds = float(int(m.group(1)) * _UNITS[m.group(2)])
    else:
        raise ValueError("expiresIn must be a duration such as \"30d\", \"12h\", a number of seconds, or null")
    if not 0 < seconds <= MAX_LIFETIME_S:
        raise ValueError(f"expiresIn must be more than 0 seconds and at most 10 years (got {seconds:g} s)")
    return seconds


@dataclass
class TokenRecord:
    """One token as kept (no secret)."""

    id: str
    sha256: str
    profile: str
    created: float
    expires: float | None = None
    label: str | None = None
    last_used: float | None = None

    def expired(self, now: float | None = None) -> bool:
        return self.expires is not None and (time.time() if now is None else now) >= self.expires

    def to_doc(self) -> JSON:
        """As stored (the hash, never the token; without the last use, kept apart)."""
        return {"id": self.id, "sha256": self.sha256, "profile": self.profile, "created": self.created,
                "expires": self.expires, "label": self.label}

    @classmethod
    def from_doc(cls, key: str, doc: JSON) -> TokenRecord | None:
        sha, profile, created = doc.get("sha256"), doc.get("profile"), doc.get("created")
        if (not _ID_RE.match(key) or doc.get("id") != key or not isinstance(sha, str) or len(sha) != 64
                or not isinstance(profile, str) or not isinstance(created, (int, float))):
            return None
        expires, label = doc.get("expires"), doc.get("label")
        return cls(key, sha, profile, float(created), float(expires) if isinstance(expires, (int, float)) else None,
                   label if isinstance(label, str) else None)

    def public(self, now: float | None = None) -> JSON:
        """As the API lists it: no secret, no hash."""
        return {"id": self.id, "profile": self.profile, "label": self.label, "createdAt": self.created,
                "expiresAt": self.expires, "lastUsedAt": self.last_used, "expired": self.expired(now)}


class TokenRegistry:
    """The scoped tokens, in memory, kept in the store through ``load``/``save`` (blocking; run in a
    thread). ``profile_exists`` (blocking too) says whether a token may be created for a profile."""

    def __init__(self, load: Load, save: Save, profile_exists: Callable[[str], bool]) -> None:
        self._load_docs = load
        self._save_doc = save
        self.profile_exists = profile_exists
        self._tokens: dict[str, TokenRecord] = {}
        self._lock = asyncio.Lock()  # every store write, and every reload, in order
        self._reload_at = -MISS_RELOAD_S  # monotonic time of the last reload made for an unknown id
        self._dirty = False
        self._reloader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- reading the store ---------------------------------------------------------------------
    def _read(self) -> dict[str, TokenRecord]:
        docs = self._load_docs()
        tokens: dict[str, TokenRecord] = {}
        for key, doc in docs.items():
            rec = TokenRecord.from_doc(key, doc)
            if rec is not None:
                tokens[key] = rec
        for key, doc in docs.items():
            if key.endswith(USED_SUFFIX) and (rec := tokens.get(key[:-len(USED_SUFFIX)])) is not None:
                used = doc.get("lastUsed")
                rec.last_used = float(used) if isinstance(used, (int, float)) else None
        return tokens

    async def reload(self) -> None:
        """Every token again from the store (start-up, another replica's change). Raises what the store
        raises."""
        async with self._lock:
            fresh = await asyncio.to_thread(self._read)
            for tid, rec in fresh.items():  # this replica's own recent use is newer than the store's
                mine = self._tokens.get(tid)
                if mine is not None and mine.last_used is not None and (rec.last_used or 0) < mine.last_used:
                    rec.last_used = mine.last_used
            self._tokens = fresh

    def on_change(self, collection: str | None, key: str | None) -> None:
        """``Supervisor.doc_listeners``: another replica changed ``collection`` (None: maybe anything).
        Called on the event loop; the reload runs in the background, one at a time."""
        if collection not in (None, "tokens"):
            return
        self._dirty = True
        if self._reloader is None or self._reloader.done():
            self._reloader = asyncio.ensure_future(self._reload_while_dirty())

    async def _reload_while_dirty(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                await self.reload()
            except Exception as e:  # the store is away: the next change, or a miss, reads it again
                log.warning("could not reload the scoped tokens: %s", e)
                return

    # -- the admin's operations ----------------------------------------------------------------
    def records(self) -> list[TokenRecord]:
        return sorted(self._tokens.values(), key=lambda r: (r.created, r.id))

    def get(self, tid: str) -> TokenRecord | None:
        return self._tokens.get(tid)

    async def create(self, profile: str, lifetime_s: float | None = None, label: str | None = None) -> tuple[TokenRecord, str]:
        """A new token for ``profile``: its record and the token itself (the only time it exists outside
        the client that receives it). The caller checks the profile exists."""
        async with self._lock:
            tid, token = mint(set(self._tokens))
            now = time.time()
            rec = TokenRecord(tid, digest(token), profile, now, now + lifetime_s if lifetime_s is not None else None,
                              label)
            await asyncio.to_thread(self._save_doc, tid, rec.to_doc())
            self._tokens[tid] = rec
        return rec, token

    async def revoke(self, tid: str) -> TokenRecord | None:
        """Forget the token ``tid`` (and its last use); None if there is none."""
        async with self._lock:
            rec = self._tokens.get(tid)
            if rec is None:
                # Maybe created on another replica a moment ago: the store has the last word.
                fresh = await asyncio.to_thread(self._read)
                rec = fresh.get(tid)
                if rec is None:
                    return None
            await asyncio.to_thread(self._save_doc, tid, None)
            self._tokens.pop(tid, None)
            await asyncio.to_thread(self._save_doc, tid + USED_SUFFIX, None)
        return rec

    # -- the access check ----------------------------------------------------------------------
    async def authenticate(self, token: str) -> Principal:
        """The principal a scoped token names, or ``AuthFailure(401)``: malformed, unknown or revoked,
        expired. Never says the token back."""
        tid = token_id(token)
        if tid is None:
            raise AuthFailure(401, "the bearer token has the scoped-token prefix rtk_ but is not a well-formed "
                                   "scoped token (runtimectl token create makes one)")
        rec = self._tokens.get(tid)
        if rec is None and time.monotonic() - self._reload_at >= MISS_RELOAD_S:
            self._reload_at = time.monotonic()
            try:
                await self.reload()
            except Exception as e:
                log.warning("could not read the scoped tokens from the store: %s", e)
            rec = self._tokens.get(tid)
        if rec is None or not hmac.compare_digest(digest(token), rec.sha256):
            raise AuthFailure(401, f"scoped token {tid} is unknown or has been revoked (runtimectl token list "
                                   "shows the valid ones)")
        now = time.time()
        if rec.expired(now):
            raise AuthFailure(401, f"scoped token {tid} expired at "
                                   f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(rec.expires or 0))}")
        if rec.last_used is None or now - rec.last_used >= USED_EVERY_S:
            rec.last_used = now
            task = asyncio.ensure_future(self._save_use(tid, now))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Principal(KIND, token_id=tid, profile=rec.profile)

    async def _save_use(self, tid: str, when: float) -> None:
        """Best effort: the token's last use, kept apart from it (never rewrites the token)."""
        try:
            async with self._lock:
                if tid in self._tokens:  # revoked meanwhile: write nothing
                    await asyncio.to_thread(self._save_doc, tid + USED_SUFFIX, {"lastUsed": when})
        except Exception as e:
            log.debug("could not record the last use of scoped token %s: %s", tid, e)
