"""The quarantined services, kept across daemon restarts in ``<state_dir>/quarantine.json``.

Owns reading and writing that file: ``load`` (an unreadable file means no
quarantine is kept, said once in the daemon's log) and ``save`` (atomic, best
effort: a failed write is logged and changes nothing else; an empty set removes
the file). Must not: decide what is quarantined or when (the supervisor does),
or touch ``registry.json``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from runtimed.protocol.types import JSON
from runtimed.state.files import atomic_write

log = logging.getLogger("runtimed.state")

FILE = "quarantine.json"


class Quarantines:
    """``service id -> {name, since, reason, lastError, cause}`` in one JSON file."""

    def __init__(self, state_dir: str | Path) -> None:
        self.path = Path(state_dir) / FILE

    def load(self) -> dict[str, JSON]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("%s is unreadable (%s): every service starts as usual", self.path, e)
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def save(self, records: dict[str, JSON]) -> None:
        try:
            if records:
                atomic_write(self.path, json.dumps(records, indent=2).encode())
            else:
                self.path.unlink(missing_ok=True)
        except OSError as e:
            log.warning("could not record the quarantined services in %s: %s", self.path, e)
