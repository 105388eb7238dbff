"""The embedded store: the state dir's files, for one daemon with nothing else to install.

Owns which file keeps what: the registry (``registry.json`` and its last-good
copy, ``registry.RegistryFile``), the quarantines (``quarantine.json``,
``quarantines.Quarantines``: of the lifecycle intents only quarantines outlive
a restart here, as before there were replicas), the journals
(``<name>.jsonl``, ``events.JsonlLog``) and the ``requestState`` key
(``gateway.key``, 32 random bytes, mode 0600; a per-process key when it cannot
be written), the interface snapshots (``interfaces/<service id>.json``) and the
OAuth sign-ins (``oauth/<service id>.json``, mode 0600 in a 0700 directory;
pending flows in memory) and the keyed collections (``profiles.json`` and
``tokens.json``: one JSON object by key; ``pins/<service id>.json``: a file per
key; mode 0600). Nothing is shared: no other replica exists to tell, so
``publish``, sessions and answer routing are the base class's no-ops, and the
policy objects in memory are the whole truth. Must not: decide lifecycle or
policy, or know about Redis.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from pathlib import Path

from runtimed.state.events import JsonlLog
from runtimed.state.files import atomic_write
from runtimed.state.quarantines import Quarantines
from runtimed.state.registry import Entry, RegistryDoc, RegistryFile
from runtimed.state.store import COLLECTIONS, JSON, Store

KEY_FILE = "gateway.key"
OAUTH = "oauth"
# Collections kept as a file per key (<collection>/<key>.json): large documents changed one at a time
# (a service's pins), so that one change does not rewrite the others.
PER_KEY = frozenset({"pins"})
_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,199}$")
INTERFACES = "interfaces"
KEY_ID = "local"


class EmbeddedStore(Store):
    kind = "embedded"
    shared = False

    def __init__(self, state_dir: Path, replica: str) -> None:
        super().__init__(state_dir, replica)
        self._registry = RegistryFile(self.state_dir)
        self._quarantines = Quarantines(self.state_dir)
        self._quarantined: dict[str, JSON] | None = None
        self._journals: dict[str, JsonlLog] = {}
        self._keys: tuple[str, dict[str, bytes]] | None = None
        self._announced: JSON | None = None

    def describe(self) -> JSON:
        return {**super().describe(), "where": str(self.state_dir)}

    # -- registry ----------------------------------------------------------------
    def load_registry(self) -> RegistryDoc:
        return self._registry.load_registry()

    def commit_registry(self, entries: dict[str, Entry], revision: int) -> int:
        return self._registry.commit_registry(entries, revision)

    # -- intents: only quarantines are kept ---------------------------------------
    def load_intents(self) -> dict[str, JSON]:
        if self._quarantined is None:
            self._quarantined = self._quarantines.load()
        return {sid: {**rec, "desired": "quarantined"} for sid, rec in self._quarantined.items()}

    def save_intent(self, service_id: str, intent: JSON | None) -> None:
        if self._quarantined is None:
            self._quarantined = self._quarantines.load()
        before = dict(self._quarantined)
        if intent is not None and intent.get("desired") == "quarantined":
            self._quarantined[service_id] = {k: v for k, v in intent.items() if k != "desired"}
        else:
            self._quarantined.pop(service_id, None)
        if self._quarantined != before:
            self._quarantines.save(self._quarantined)

    # -- interface snapshots: interfaces/<id>.json -----------------------------------------
    def load_interface(self, service_id: str) -> tuple[JSON, float] | None:
        path = self.state_dir / INTERFACES / f"{service_id}.json"
        try:
            data = json.loads(path.read_text())
            return (data, path.stat().st_mtime) if isinstance(data, dict) else None
        except (OSError, ValueError):
            return None

    def save_interface(self, service_id: str, snapshot: JSON) -> None:
        folder = self.state_dir / INTERFACES
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / f"{service_id}.json", json.dumps(snapshot).encode())

    def drop_interface(self, service_id: str) -> None:
        try:
            (self.state_dir / INTERFACES / f"{service_id}.json").unlink()
        except OSError:
            pass

    # -- keyed collections: <collection>.json (one object by key), or a file per key, 0600 ----
    def load_docs(self, collection: str) -> dict[str, JSON]:
        assert collection in COLLECTIONS, collection
        if collection in PER_KEY:
            return self._load_per_key(collection)
        try:
            data = json.loads((self.state_dir / f"{collection}.json").read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            raise OSError(f"{self.state_dir / f'{collection}.json'} cannot be read: {e}") from None
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def save_doc(self, collection: str, key: str, doc: JSON | None) -> None:
        if collection in PER_KEY:
            self._save_per_key(collection, key, doc)
            return
        docs = self.load_docs(collection)
        if doc is None:
            if docs.pop(key, None) is None:
                return
        else:
            docs[key] = doc
        atomic_write(self.state_dir / f"{collection}.json", json.dumps(docs, indent=1, sort_keys=True).encode(), mode=0o600)

    def _load_per_key(self, collection: str) -> dict[str, JSON]:
        folder = self.state_dir / collection
        out: dict[str, JSON] = {}
        try:
            paths = sorted(folder.glob("*.json"))
        except OSError:
            return out
        for path in paths:
            try:
                doc = json.loads(path.read_text())
            except FileNotFoundError:
                continue
            except (OSError, ValueError) as e:
                raise OSError(f"{path} cannot be read: {e}") from None
            if isinstance(doc, dict):
                out[path.stem] = doc
        return out

    def _save_per_key(self, collection: str, key: str, doc: JSON | None) -> None:
        if not _SAFE_KEY.match(key):
            raise OSError(f"{key!r} cannot name a file of the {collection} collection")
        folder = self.state_dir / collection
        path = folder / f"{key}.json"
        if doc is None:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            return
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        atomic_write(path, json.dumps(doc, sort_keys=True).encode(), mode=0o600)

    # -- OAuth sign-ins: oauth/<id>.json, 0600 ----------------------------------------
    def load_credentials(self, service_id: str) -> JSON | None:
        try:
            data = json.loads((self.state_dir / OAUTH / f"{service_id}.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def save_credentials(self, service_id: str, record: JSON | None) -> None:
        self._save_per_key(OAUTH, service_id, record)

    # -- journals ------------------------------------------------------------------
    def journal(self, name: str) -> JsonlLog:
        log = self._journals.get(name)
        if log is None:
            log = self._journals[name] = JsonlLog(self.state_dir / f"{name}.jsonl")
        return log

    async def close(self) -> None:
        for log in self._journals.values():
            log.close()

    # -- replicas: just this one -----------------------------------------------------
    async def announce(self, info: JSON, ttl_s: float) -> None:
        self._announced = {**info, "replica": self.replica, "seen": time.time()}

    def replicas(self) -> list[JSON]:
        return [self._announced] if self._announced is not None else []

    # -- keys ----------------------------------------------------------------------
    def signing_keys(self) -> tuple[str, dict[str, bytes]]:
        if self._keys is None:
            self._keys = KEY_ID, {KEY_ID: _file_key(self.state_dir / KEY_FILE)}
        return self._keys


def _file_key(path: Path) -> bytes:
    """The key kept in ``path`` (made on first use), so a token still verifies after a restart."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data[:32]
    except OSError:
        pass
    key = secrets.token_bytes(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
    except OSError:
        pass
    return key
