"""The profile registry: which profiles exist, as the state store keeps them.

Owns ``ProfileRegistry``: loading every profile of the store's ``profiles`` collection at start
(each validated with ``runtimed.config.profile.parse_profile``; an invalid document is skipped
and reported, never served), saving and removing one through the store (blocking store calls run
in a thread, ``asyncio.to_thread``), following another replica's change (``peer_changed``, one of
the supervisor's ``doc_listeners``: the changed profile, or all of them after a resync, is read
again) and telling its ``listeners`` which profile changed, so that the gateway rebuilds that
endpoint's catalog. Lookups (``get``, ``names``, ``all``) never touch the store.

Must not: serve anything (``runtimed.gateway`` serves profiles, ``runtimed.http`` their REST
API), decide what a profile lists, or import beyond ``runtimed.config``, ``runtimed.errors`` and
``runtimed.state``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from runtimed.config.profile import ProfileManifest, parse_profile
from runtimed.errors import ManifestError
from runtimed.state.store import Store

log = logging.getLogger("runtimed.profiles")
COLLECTION = "profiles"

# Told after a profile was created, replaced or removed (here or by another replica): its name, or
# None when any may have changed (a reload of every profile).
ProfileListener = Callable[[str | None], None]


class ProfileRegistry:
    """The profiles, by name. One per daemon; built by ``runtimed.daemon`` with the store."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._profiles: dict[str, ProfileManifest] = {}
        # Documents in the store that do not validate: name -> why (they are not served).
        self.invalid: dict[str, str] = {}
        self.listeners: list[ProfileListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lock = asyncio.Lock()

    # -- reading ------------------------------------------------------------------------
    def get(self, name: str) -> ProfileManifest | None:
        """The profile named ``name``, or None. Never blocks."""
        return self._profiles.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._profiles

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def all(self) -> list[ProfileManifest]:
        return [self._profiles[n] for n in self.names()]

    # -- loading ------------------------------------------------------------------------
    def load(self) -> list[str]:
        """Read every profile from the store (blocking: at start, before the event loop serves).
        Returns the problems to say out loud (documents that do not validate are skipped)."""
        self._profiles, self.invalid = self._parse_all(self._store.load_docs(COLLECTION))
        return [self._problem(name, why) for name, why in sorted(self.invalid.items())]

    @staticmethod
    def _parse(key: str, doc: Any) -> ProfileManifest:
        manifest = parse_profile(doc)
        if manifest.name != key:
            raise ManifestError(f"it names itself {manifest.name!r}")
        return manifest

    def _parse_all(self, docs: dict[str, Any]) -> tuple[dict[str, ProfileManifest], dict[str, str]]:
        good: dict[str, ProfileManifest] = {}
        bad: dict[str, str] = {}
        for key, doc in docs.items():
            try:
                good[key] = self._parse(key, doc)
            except ManifestError as e:
                bad[key] = str(e)
        return good, bad

    @staticmethod
    def _problem(name: str, why: str) -> str:
        return f"profile {name!r} in the state store does not validate and is not served: {why}"

    # -- changing -----------------------------------------------------------------------
    async def save(self, manifest: ProfileManifest) -> bool:
        """Create or replace a profile; durable when it returns. Returns whether it was created.
        Raises ``OSError``/``StoreUnavailable`` when the store cannot keep it (nothing changes)."""
        async with self._lock:
            await asyncio.to_thread(self._store.save_doc, COLLECTION, manifest.name, manifest.public_dict())
            created = manifest.name not in self._profiles
            self._profiles[manifest.name] = manifest
            self.invalid.pop(manifest.name, None)
        self._tell(manifest.name)
        return created

    async def remove(self, name: str) -> bool:
        """Remove a profile (or a document of that name that does not validate); False when there is
        no such profile. Raises ``OSError``/``StoreUnavailable`` when the store cannot (nothing changes)."""
        async with self._lock:
            if name not in self._profiles and name not in self.invalid:
                return False
            await asyncio.to_thread(self._store.save_doc, COLLECTION, name, None)
            self._profiles.pop(name, None)
            self.invalid.pop(name, None)
        self._tell(name)
        return True

    # -- another replica's change -----------------------------------------------------------
    def peer_changed(self, collection: str | None, key: str | None) -> None:
        """A ``Supervisor.doc_listeners`` callback (called on the event loop): another replica
        changed profile ``key`` (None: maybe any, after a resync). Reads it again in the background."""
        if collection not in (None, COLLECTION):
            return
        task = asyncio.get_running_loop().create_task(self.reload(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self, name: str | None = None) -> None:
        """Read profile ``name`` (None: every profile) from the store again and tell the listeners.
        A store that cannot be read leaves what is served as it was (logged)."""
        async with self._lock:
            try:
                docs = await asyncio.to_thread(self._store.load_docs, COLLECTION)
            except Exception as e:  # the store says when it is back; a later change reloads again
                log.warning("could not reload profiles from the state store: %s", e)
                return
            if name is None:
                self._profiles, self.invalid = self._parse_all(docs)
            else:
                self._profiles.pop(name, None)
                self.invalid.pop(name, None)
                if name in docs:
                    try:
                        self._profiles[name] = self._parse(name, docs[name])
                    except ManifestError as e:
                        self.invalid[name] = str(e)
                        log.warning("%s", self._problem(name, str(e)))
        self._tell(name)

    def _tell(self, name: str | None) -> None:
        for listener in list(self.listeners):
            try:
                listener(name)
            except Exception:  # one listener must not keep the others from hearing
                log.exception("a profile listener failed")
