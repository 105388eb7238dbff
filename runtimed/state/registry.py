"""The persistent registry of services: ``registry.json`` in the state dir.

Owns the file format (with ``formatVersion`` for migrations), atomic durable
writes (temp file, fsync, ``os.replace``, directory fsync, under a filelock),
the last-good copy and recovery from a corrupt file, and the daemon's
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
from typing import Any

from filelock import FileLock, Timeout

from runtimed.config.manifest import ServiceManifest, parse_manifest
from runtimed.errors import ManifestError, RegistryError, StateDirBusy
from runtimed.state.files import atomic_write

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
    """Holds ``runtimed.lock`` for the daemon's lifetime; records who holds it."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = FileLock(str(state_dir / "runtimed.lock"))
        self._owner = state_dir / "runtimed.pid"

    def acquire(self, address: str) -> None:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = self.describe_holder()
            raise StateDirBusy(
                f"state dir {self.state_dir} is in use by another runtimed ({holder}); "
                "stop it first or use another --state-dir"
            ) from None
        atomic_write(self._owner, json.dumps({"pid": os.getpid(), "address": address, "since": time.time()}).encode())

    def describe_holder(self) -> str:
        try:
            info = json.loads(self._owner.read_text())
            return f"pid {info.get('pid')}, serving {info.get('address')}"
        except (OSError, ValueError):
            return "holder unknown"

    def release(self) -> None:
        try:
            self._owner.unlink()
        except OSError:
            pass
        self._lock.release()


class Registry:
    """In-memory registry, persisted on every change before it is acknowledged."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / "registry.json"
        self.last_good = state_dir / "registry.last-good.json"
        self._file_lock = FileLock(str(state_dir / "registry.json.lock"))
        self._entries: dict[str, Entry] = {}
        self.generation = 0

    # -- reading ---------------------------------------------------------
    def load(self) -> LoadReport:
        report = LoadReport()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with self._file_lock:
            if not self.path.exists():
                if self.last_good.exists():
                    report.problems.append(f"{self.path} is missing; loading {self.last_good}")
                    self._entries, self.generation = parse_document(self.last_good.read_bytes(), report)
                return report
            raw = self.path.read_bytes()
            try:
                self._entries, self.generation = parse_document(raw)
                return report
            except RegistryError as e:
                # Without a usable last good copy, leave registry.json where it
                # is: every later start must refuse too, never start empty.
                if not self.last_good.exists():
                    raise RegistryError(
                        f"{self.path} is unreadable ({e}) and there is no last good copy; "
                        f"refusing to start with an empty registry: inspect or repair {self.path}"
                    ) from None
                try:
                    good = parse_document(self.last_good.read_bytes())
                except RegistryError as e2:
                    raise RegistryError(
                        f"{self.path} ({e}) and its last good copy {self.last_good} ({e2}) are both unreadable; "
                        f"nothing was overwritten: inspect {self.path}"
                    ) from None
                kept = self.state_dir / f"registry.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.json"
                os.replace(self.path, kept)
                report.recovered_from = str(kept)
                report.problems.append(f"{self.path} is unreadable ({e}); kept it as {kept}")
                self._entries, self.generation = good
                report.problems.append(f"loaded the last good copy {self.last_good} ({len(self._entries)} services)")
                # Write the recovered state back so the next start is clean.
                self._write_locked()
                return report

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
        previous = dict(self._entries)
        self._entries[manifest.id] = entry
        try:
            self._write()
        except OSError:
            self._entries = previous
            raise
        return entry, old is None

    def remove(self, sid: str) -> Entry | None:
        entry = self._entries.get(sid)
        if entry is None:
            return None
        previous = dict(self._entries)
        del self._entries[sid]
        try:
            self._write()
        except OSError:
            self._entries = previous
            raise
        return entry

    def _write(self) -> None:
        with self._file_lock:
            self._write_locked()

    def _write_locked(self) -> None:
        self.generation += 1
        doc = {
            "formatVersion": FORMAT_VERSION,
            "generation": self.generation,
            "services": {sid: e.to_json() for sid, e in sorted(self._entries.items())},
        }
        data = json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"
        atomic_write(self.path, data)
        atomic_write(self.last_good, data)


def parse_document(raw: bytes, report: LoadReport | None = None) -> tuple[dict[str, Entry], int]:
    """(entries, generation) of a ``registry.json`` document. Strict without a ``report``: any bad
    service raises ``RegistryError``; with one, bad services are skipped and listed in it."""
    try:
        doc = json.loads(raw.decode("utf-8"))
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
    entries: dict[str, Entry] = {}
    for sid, item in doc["services"].items():
        try:
            manifest = parse_manifest(item.get("manifest") if isinstance(item, dict) else None)
            entries[manifest.id] = Entry(manifest, float(item.get("createdAt", 0)), float(item.get("updatedAt", 0)))
        except (ManifestError, TypeError, ValueError) as e:
            msg = f"service {sid}: {e}" if isinstance(e, ManifestError) else f"service {sid}: bad createdAt/updatedAt"
            if report is None:
                raise RegistryError(msg) from None
            report.problems.append(msg)
    return entries, generation
