"""Fixtures of the state tests: ``redis_server``, a real ``redis-server`` (``tests.support.redisserver``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redisserver import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port (AOF, fsync always), killed at the end."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
