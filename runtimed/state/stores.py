"""Which store a daemon uses: ``open_store`` reads the store URL, ``replica_id`` names the replica.

Owns the mapping from ``settings.store`` to an implementation of
``store.Store`` (``embedded.EmbeddedStore``, ``redis.RedisStore``, imported only
when chosen). Must not: hold state, or be imported by anything but the
composition root (``runtimed.daemon``) and tests.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from runtimed.errors import ConfigError
from runtimed.state.store import Store


def replica_id(settings_replica: str | None = None) -> str:
    """This daemon's name among replicas: the configured one, else ``<host>-<pid>-<random>``."""
    if settings_replica:
        return settings_replica
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}-{secrets.token_hex(2)}"


def open_store(url: str | None, state_dir: Path, replica: str, signing_key: str | None = None) -> Store:
    """The store the URL names: None/``""``/``embedded`` for the files in ``state_dir``,
    ``redis://[:password@]host:port/db`` (or ``rediss://``) for Redis. ``ConfigError`` otherwise."""
    if not url or url == "embedded":
        from runtimed.state.embedded import EmbeddedStore
        return EmbeddedStore(state_dir, replica)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from runtimed.state.redis import RedisStore
        store: Store = RedisStore(url, state_dir, replica, signing_key=signing_key)
        return store
    raise ConfigError(f"store {url!r} is not supported: use 'embedded' (the state dir's files, the default) "
                      "or redis://HOST:PORT/DB")
