from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProc
from tests.support.inprocess import inprocess as inprocess  # the daemon's app in this process


@pytest.fixture(autouse=True, scope="session")
def _no_user_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The daemons and CLIs tests start never read the developer's ~/.config/runtimed/config.toml."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
        yield


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProc]:
    """A real runtimed on a free loopback port with a temp state dir."""
    d = DaemonProc(tmp_path / "state")
    d.start()
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator:
    """Factory for daemons with custom flags/env/token; all stopped at the end."""
    made: list[DaemonProc] = []

    def make(name: str = "state", args: list[str] | None = None, env: dict[str, str] | None = None,
             token: str | None = None, start: bool = True) -> DaemonProc:
        d = DaemonProc(tmp_path / name, args=args, env=env, token=token)
        made.append(d)
        return d.start() if start else d

    yield make
    for d in made:
        d.stop()
