"""The tool search of a search-mode profile: a full-text index ranked by BM25 (SQLite FTS5).

Owns ``ToolIndex``: one in-memory SQLite database (the standard library's ``sqlite3``; FTS5 must
be compiled in, ``fts5_problem`` says when it is not) holding one row per tool, with four
columns: the tool's shown name, its service, its parameter names (the words of each) and its
description. Names are split into words (``create_issue``, ``createIssue``, ``create-issue`` are
all "create issue") and every column goes through the Porter stemmer (``issues`` finds
``issue``). A query is the free text an agent writes: its words, less a few stop words, ORed
(a word of four letters or more also matches as a prefix), ranked by FTS5's ``bm25()`` with the
columns weighted (``WEIGHTS``) so that a match in a name outranks one in a description. The index
is built once per catalog (a catalog is rebuilt, with a new index, whenever what it lists changes).

Must not: know about services, profiles, policies or MCP beyond the few fields a ``ToolDoc`` has.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

# bm25() weights, by column: name, service, parameter names, description.
WEIGHTS = (10.0, 4.0, 3.0, 1.0)
MAX_QUERY_WORDS = 32
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "for", "from", "how", "i", "in", "is", "it",
    "me", "my", "of", "on", "or", "please", "that", "the", "this", "to", "tool", "tools", "use", "using",
    "want", "what", "which", "with"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class ToolDoc:
    """One tool as the index sees it."""

    name: str  # the name the profile shows (what describe_tool and call_tool take)
    description: str
    service: str
    params: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    name: str
    description: str
    service: str
    score: float  # bm25: lower is a better match


class SearchUnavailable(RuntimeError):
    """This Python's SQLite has no FTS5."""


def words(text: str) -> list[str]:
    """The words of a name or a phrase, lower case: ``github__createIssue`` -> github, create, issue."""
    return [w.lower() for part in _WORD.findall(text) for w in _CAMEL.sub(" ", part).split()]


@lru_cache(maxsize=1)
def fts5_problem() -> str | None:
    """Why the index cannot be built here (no FTS5 in this SQLite), or None when it can."""
    try:
        db = sqlite3.connect(":memory:")
        try:
            db.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
        finally:
            db.close()
    except sqlite3.Error as e:
        return f"SQLite {sqlite3.sqlite_version} has no FTS5 ({e}): search mode needs a Python whose SQLite has FTS5"
    return None


def match_expression(query: str) -> str | None:
    """The FTS5 MATCH expression for free text, or None when it has no word to look for."""
    found = [w for w in words(query) if w not in STOP_WORDS] or words(query)
    unique = list(dict.fromkeys(found))[:MAX_QUERY_WORDS]
    if not unique:
        return None
    return " OR ".join(f'"{w}"*' if len(w) >= 4 else f'"{w}"' for w in unique)


class ToolIndex:
    """The tools of one catalog, searchable. Safe to query from any thread (one lock)."""

    def __init__(self, docs: Iterable[ToolDoc]) -> None:
        problem = fts5_problem()
        if problem is not None:
            raise SearchUnavailable(problem)
        self._db = sqlite3.connect(":memory:", check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute("CREATE VIRTUAL TABLE tools USING fts5(name, service, params, description, "
                         "tokenize = 'porter unicode61')")
        self.docs: list[ToolDoc] = list(docs)
        self._db.executemany(
            "INSERT INTO tools(rowid, name, service, params, description) VALUES (?, ?, ?, ?, ?)",
            ((i, " ".join(words(d.name)), " ".join(words(d.service)),
              " ".join(w for p in d.params for w in words(p)), d.description)
             for i, d in enumerate(self.docs)))
        self._db.commit()

    def __len__(self) -> int:
        return len(self.docs)

    def search(self, query: str, limit: int = 10) -> list[Hit]:
        """The best ``limit`` matches of ``query``, best first (ties in the order the tools were given)."""
        expr = match_expression(query)
        if expr is None or limit <= 0:
            return []
        weights = ", ".join(str(w) for w in WEIGHTS)
        with self._lock:
            rows = self._db.execute(
                f"SELECT rowid, bm25(tools, {weights}) AS score FROM tools WHERE tools MATCH ? "
                "ORDER BY score, rowid LIMIT ?", (expr, limit)).fetchall()
        return [Hit(self.docs[i].name, self.docs[i].description, self.docs[i].service, float(score))
                for i, score in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
