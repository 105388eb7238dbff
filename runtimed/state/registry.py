"""The persistent registry of services: ``registry.json`` in the state dir.

Owns the file format (with ``formatVersion`` for migrations), atomic durable
writes (temp file, fsync, ``os.replace``, directory fsync, under a filelock),
the last-good copy (written with ``registry.json`` as one step,
``files.atomic_write_all``: a change refused for lack of space is in neither
file, an acknowledged one is in both), reading it strictly (two services with
one name or one origin, or a key twice, make a file unreadable; a path that is
not a file is refused, never moved), recovery from a corrupt file, and the daemon's
single-instance lock on the state dir. The daemon keeps the authoritative copy
in memory; nothing here is read per request. Must not know about lifecycle
state, backends or HTTP.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout

from runtimed.config.manifest import ServiceManifest, parse_manifest
from runtimed.errors import ManifestError, RegistryError, StateDirBusy
from runtimed.state.files import atomic_write, atomic_write_all, remove_temps

FORMAT_VERSION = 1
log = logging.getLogger("runtimed.registry")


@dataclass
class Entry:
    manifest: ServiceManifest
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {"manifest": self.manifest.public_dict(), "createdAt": self.created_at, "updatedAt": self.updated_at}


@dataclass
class LoadReport:
    recovered_from: str | None = None  # path of the bad file kept for inspection
    problems: list[str] = field(default_factory=list)


class StateDirLock:
    """Holds ``runtimed.lock`` for the daemon's lifetime; records who holds it in ``runtimed.pid``
    (``pid``, ``address``, ``since``), which is also the pid file ``runtimectl daemon`` reads."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = FileLock(str(state_dir / "runtimed.lock"))
        self._owner = state_dir / "runtimed.pid"

    def acquire(self, address: str | None = None) -> None:
        """Take the lock (``StateDirBusy`` naming the holder if another daemon has it); with
        ``address``, record it at once (else call ``record`` once the port is bound)."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = self.describe_holder()
            raise StateDirBusy(
                f"state dir {self.state_dir} is in use by another runtimed ({holder}); "
                "stop it first (runtimectl daemon stop) or use another --state-dir"
            ) from None
        if address is not None:
            self.record(address)

    def record(self, address: str) -> None:
        """Write who holds the lock: this process, serving ``address``."""
        atomic_write(self._owner, json.dumps({"pid": os.getpid(), "address": address, "since": time.time()}).encode())

    def holder(self) -> dict[str, Any] | None:
        """What ``runtimed.pid`` says of the daemon holding the lock, or None when no daemon holds it
        (for another process: ``runtimectl daemon status``)."""
        if not (self.state_dir / "runtimed.lock").exists():
            return None
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            try:
                info = json.loads(self._owner.read_text())
            except (OSError, ValueError):
                info = {}
            return info if isinstance(info, dict) else {}
        self._lock.release()
        return None

    def describe_holder(self) -> str:
        try:
            info = json.loads(self._owner.read_text())
            return f"pid {info.get('pid')}, serving {info.get('address')}"
        except (OSError, ValueError, AttributeError):
            return "holder unknown"

    def release(self) -> None:
        try:
            self._owner.unlink()
        except OSError:
            pass
        self._lock.release()


@dataclass
class RegistryDoc:
    """A stored registry: the services by id, the revision, and the problems to say."""

    entries: dict[str, Entry]
    revision: int
    problems: list[str] = field(default_factory=list)
    recovered_from: str | None = None  # path of a bad file kept for inspection


class RegistryStorage(Protocol):
    """Where a ``Registry`` is kept: ``RegistryFile`` here, or a ``runtimed.state.store.Store``."""

    def load_registry(self) -> RegistryDoc: ...

    def commit_registry(self, entries: dict[str, Entry], revision: int) -> int: ...


class RegistryFile:
    """``registry.json`` and its last-good copy in one state dir: the embedded store's registry."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "registry.json"
        self.last_good = state_dir / "registry.last-good.json"
        self._file_lock = FileLock(str(state_dir / "registry.json.lock"))

    def load_registry(self) -> RegistryDoc:
        report = LoadReport()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._file_lock:
            for name in remove_temps(self.state_dir, (self.path.name, self.last_good.name)):
                log.info("removed %s, left by a write that did not finish", name)
            if not self.path.exists():
                if self.last_good.exists():
                    report.problems.append(f"{self.path} is missing; loading {self.last_good}")
                    entries, generation = parse_document(_read(self.last_good), report)
                    return RegistryDoc(entries, generation, report.problems)
                return RegistryDoc({}, 0)
            raw = _read(self.path)  # not a file at all (a directory...): refuse, never move it away
            try:
                entries, generation = parse_document(raw)
                return RegistryDoc(entries, generation)
            except RegistryError as e:
                # Without a usable last good copy, leave registry.json where it
                # is: every later start must refuse too, never start empty.
                if not self.last_good.exists():
                    raise RegistryError(
                        f"{self.path} is unreadable ({e}) and there is no last good copy; "
                        f"refusing to start with an empty registry: inspect or repair {self.path}"
                    ) from None
                try:
                    entries, generation = parse_document(_read(self.last_good))
                except RegistryError as e2:
                    raise RegistryError(
                        f"{self.path} ({e}) and its last good copy {self.last_good} ({e2}) are both unreadable; "
                        f"nothing was overwritten: inspect {self.path}"
                    ) from None
                kept = self.state_dir / f"registry.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
                os.replace(self.path, kept)
                report.problems.append(f"{self.path} is unreadable ({e}); kept it as {kept}")
                report.problems.append(f"loaded the last good copy {self.last_good} ({len(entries)} services)")
                # Write the recovered state back so the next start is clean.
                generation = self._write_locked(entries, generation)
                return RegistryDoc(entries, generation, report.problems, str(kept))

    def commit_registry(self, entries: dict[str, Entry], revision: int) -> int:
        with self._file_lock:
            return self._write_locked(entries, revision)

    def _write_locked(self, entries: dict[str, Entry], generation: int) -> int:
        """Both files, or neither: the last-good copy is renamed first and ``registry.json`` last
        (the commit point); a failure anywhere leaves both as they were and raises ``OSError``."""
        doc = {
            "formatVersion": FORMAT_VERSION,
            "generation": generation + 1,
            "services": {sid: e.to_json() for sid, e in sorted(entries.items())},
        }
        data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write_all([(self.last_good, data), (self.path, data)])
        return generation + 1


class Registry:
    """The registry in memory (the daemon's authoritative copy), checked on every change and kept
    in its storage (a ``Path``: the state dir's ``RegistryFile``) before the change is acknowledged."""

    def __init__(self, storage: RegistryStorage | Path, state_dir: Path | None = None) -> None:
        if isinstance(storage, Path):
            state_dir, storage = storage, RegistryFile(storage)
        self.storage = storage
        self.state_dir = state_dir or Path(".")
        self._entries: dict[str, Entry] = {}
        self.revision = 0

    # -- reading ---------------------------------------------------------
    def load(self) -> LoadReport:
        doc = self.storage.load_registry()
        self._entries, self.revision = doc.entries, doc.revision
        return LoadReport(doc.recovered_from, doc.problems)

    def replace(self, doc: RegistryDoc) -> None:
        """Take a newer stored registry (another replica changed it)."""
        self._entries, self.revision = dict(doc.entries), doc.revision

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.manifest.name))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, ref: str) -> Entry | None:
        """By id or by name."""
        if ref in self._entries:
            return self._entries[ref]
        for e in self._entries.values():
            if e.manifest.name == ref:
                return e
        return None

    # -- writing ---------------------------------------------------------
    def put(self, manifest: ServiceManifest, rename: bool = False) -> tuple[Entry, bool]:
        """Insert or replace; returns (entry, created). Durable when it returns. ``rename``: the
        origin's entry may change its name (else a new name for a registered origin is refused)."""
        now = time.time()
        old = self._entries.get(manifest.id)
        for e in self._entries.values():
            if e.manifest.name == manifest.name and e.manifest.id != manifest.id:
                raise RegistryError(
                    f"a service named {manifest.name!r} already exists with another origin "
                    f"({e.manifest.id}); remove it first or choose another name"
                )
        if old is not None and old.manifest.name != manifest.name and not rename:
            raise RegistryError(
                f"this origin is already registered as {old.manifest.name!r} ({manifest.id}); "
                "one origin is one service"
            )
        entry = Entry(manifest, old.created_at if old else now, now)
        entries = dict(self._entries)
        entries[manifest.id] = entry
        self._commit(entries)
        return entry, old is None

    def remove(self, sid: str) -> Entry | None:
        entry = self._entries.get(sid)
        if entry is None:
            return None
        entries = dict(self._entries)
        del entries[sid]
        self._commit(entries)
        return entry

    def _commit(self, entries: dict[str, Entry]) -> None:
        """Store ``entries``; only then are they this registry's (a refusal changes nothing here)."""
        self.revision = self.storage.commit_registry(entries, self.revision)
        self._entries = entries


def _read(path: Path) -> bytes:
    """The bytes of a registry file; ``RegistryError`` saying what to do when it is not a readable file."""
    if path.is_dir():
        raise RegistryError(f"{path} is a directory, not the registry file: move it away (runtimed leaves it "
                            "untouched), then start runtimed again")
    if path.exists() and not path.is_file():
        raise RegistryError(f"{path} is not a regular file: move it away, then start runtimed again")
    try:
        return path.read_bytes()
    except OSError as e:
        raise RegistryError(f"{path} cannot be read ({e.strerror or e}): check its owner and permissions") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` keeps the last of two equal keys silently; in the registry that hides a service."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise RegistryError(f"the key {key!r} appears twice in one object (a hand edit?); keep one")
        out[key] = value
    return out


def parse_document(raw: bytes, report: LoadReport | None = None) -> tuple[dict[str, Entry], int]:
    """(entries, generation) of a ``registry.json`` document. Strict without a ``report``: any bad
    service, or two services with one name or one origin, raises ``RegistryError``; with one, bad
    services are skipped (of duplicates, all but the first in the file) and listed in it."""
    try:
        doc = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise RegistryError(f"not valid JSON: {e}") from None
    except RecursionError:
        raise RegistryError("not valid JSON: nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict):
        raise RegistryError("not a registry document (no 'services' object)")
    version = doc.get("formatVersion")
    if version != FORMAT_VERSION:
        raise RegistryError(f"formatVersion {version!r} is not supported (this daemon reads {FORMAT_VERSION})")
    try:
        generation = int(doc.get("generation", 0))
    except (TypeError, ValueError):
        raise RegistryError(f"'generation' must be an integer, not {doc.get('generation')!r}") from None
    parsed: list[tuple[str, Entry]] = []
    for sid, item in doc["services"].items():
        try:
            manifest = parse_manifest(item.get("manifest") if isinstance(item, dict) else None)
            parsed.append((sid, Entry(manifest, float(item.get("createdAt", 0)), float(item.get("updatedAt", 0)))))
        except (ManifestError, TypeError, ValueError) as e:
            msg = f"service {sid}: {e}" if isinstance(e, ManifestError) else f"service {sid}: bad createdAt/updatedAt"
            if report is None:
                raise RegistryError(msg) from None
            report.problems.append(msg)
    entries: dict[str, Entry] = {}
    by_name: dict[str, str] = {}  # name -> key of the first service with it
    for sid, entry in parsed:
        m = entry.manifest
        keys = [k for k, e in parsed if e.manifest.name == m.name]
        if m.id in entries:
            first = next(k for k, e in parsed if e.manifest.id == m.id)
            msg = (f"services {first!r} and {sid!r} have the same origin (id {m.id}): one origin is one service; "
                   "remove one of them")
        elif m.name in by_name:
            msg = (f"{m.name!r} is the name of {len(keys)} services ({', '.join(keys)}): a name must be unique; "
                   "rename or remove all but one")
        else:
            entries[m.id] = entry
            by_name[m.name] = sid
            continue
        if report is None:
            raise RegistryError(msg)
        report.problems.append(f"{msg}; skipped {sid!r}, kept the first")
    return entries, generation
