"""The shape of the code, checked: what README's "Architecture" promises.

Reads the source with ``ast`` (imports inside ``if TYPE_CHECKING:`` and inside
functions count too) and checks: no import cycle among runtimed's modules; the
data path's layers import only downward; nothing outside ``runtimed.backends``
asks which kind a service is; the protocol vocabulary is a leaf; runtimectl's
commands never import its root; every module and package opens with a
docstring; no two modules at one level share a prefix family.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("runtimed", "runtimectl")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (a ``from P import m`` of a submodule counts as P.m)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] not in PACKAGES:
                continue
            subs = [f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in MODULES]
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(mod)
    out.discard(name)
    return {m for m in out if m in MODULES}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def _importers_of(prefix: str) -> dict[str, set[str]]:
    hits: dict[str, set[str]] = defaultdict(set)
    for name, deps in GRAPH.items():
        for d in deps:
            if d == prefix or d.startswith(prefix + "."):
                hits[name].add(d)
    return hits


def test_no_import_cycle() -> None:
    assert _cycles() == []


def test_only_the_entry_point_imports_the_composition_root() -> None:
    assert set(_importers_of("runtimed.daemon")) <= {"runtimed.cli"}


@pytest.mark.parametrize(
    ("layer", "must_not_import"),
    [
        # request -> gateway -> policy -> backend -> upstream: nothing below reaches back up.
        ("runtimed.protocol", ["runtimed.gateway", "runtimed.policy", "runtimed.backends", "runtimed.lifecycle",
                               "runtimed.http", "runtimed.state", "runtimed.records", "runtimed.config",
                               "runtimed.bootstrap", "runtimectl"]),
        ("runtimed.backends", ["runtimed.gateway", "runtimed.policy", "runtimed.lifecycle", "runtimed.http",
                               "runtimed.records", "runtimed.bootstrap", "runtimectl"]),
        ("runtimed.policy", ["runtimed.gateway", "runtimed.http", "runtimed.lifecycle", "runtimectl"]),
        ("runtimed.lifecycle", ["runtimed.gateway", "runtimed.http", "runtimectl"]),
        ("runtimed.gateway", ["runtimed.http", "runtimectl"]),
        ("runtimed.state", ["runtimed.gateway", "runtimed.policy", "runtimed.backends", "runtimed.lifecycle",
                            "runtimed.http", "runtimectl"]),
        ("runtimed.config", ["runtimed.gateway", "runtimed.policy", "runtimed.backends", "runtimed.lifecycle",
                             "runtimed.http", "runtimed.state", "runtimectl"]),
        ("runtimed.records", ["runtimed.gateway", "runtimed.http", "runtimed.lifecycle", "runtimectl"]),
        ("runtimed.bootstrap", ["runtimed.gateway", "runtimed.policy", "runtimed.backends", "runtimed.lifecycle",
                                "runtimed.http", "runtimectl"]),
        # Profiles are kept here and served by the gateway: the registry and the search index know
        # the store and the manifest model, nothing that serves or calls.
        ("runtimed.profiles", ["runtimed.gateway", "runtimed.http", "runtimed.lifecycle", "runtimed.policy",
                               "runtimed.backends", "runtimed.records", "runtimed.bootstrap", "runtimed.auth",
                               "runtimed.daemon", "runtimectl"]),
        ("runtimed.pins", ["runtimed.gateway", "runtimed.policy", "runtimed.backends", "runtimed.lifecycle",
                           "runtimed.http", "runtimed.records", "runtimectl"]),
        ("runtimed.auth", ["runtimed.gateway", "runtimed.policy", "runtimed.backends", "runtimed.lifecycle",
                           "runtimed.http", "runtimed.state", "runtimed.records", "runtimectl"]),
    ],
)
def test_layers_import_downward_only(layer: str, must_not_import: list[str]) -> None:
    bad = sorted(
        f"{name} imports {dep}"
        for name, deps in GRAPH.items()
        if name == layer or name.startswith(layer + ".")
        for dep in deps
        if any(dep == m or dep.startswith(m + ".") for m in must_not_import)
    )
    assert bad == []


def test_the_error_tree_and_the_json_alias_are_leaves() -> None:
    assert GRAPH["runtimed.errors"] == set()
    assert GRAPH["runtimed.protocol.types"] == set()


def test_nothing_outside_backends_asks_which_kind_a_service_is() -> None:
    for kind in ("runtimed.backends.remote", "runtimed.backends.wasm"):
        outside = {m for m in _importers_of(kind) if not m.startswith("runtimed.backends")}
        assert outside == set(), f"{kind} is imported from {sorted(outside)}"


def test_runtimectl_commands_never_import_the_root() -> None:
    bad = {m for m, deps in GRAPH.items() if m.startswith("runtimectl.commands") and "runtimectl.cli" in deps}
    assert bad == set()


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_says_what_it_owns(name: str) -> None:
    path = MODULES[name]
    if path.name == "__main__.py":
        return
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    assert doc and len(doc) > 20, f"{path.relative_to(REPO)} has no module docstring"


def test_no_prefix_families_at_one_level() -> None:
    by_dir: dict[Path, list[str]] = defaultdict(list)
    for path in MODULES.values():
        if path.name not in ("__init__.py", "__main__.py"):
            by_dir[path.parent].append(path.stem)
    families = []
    for d, stems in by_dir.items():
        prefixes: dict[str, list[str]] = defaultdict(list)
        for s in stems:
            if "_" in s.strip("_"):
                prefixes[s.strip("_").split("_")[0]].append(s)
        for p, group in prefixes.items():
            if len(group) + (p in stems) > 1:
                families.append(f"{d.relative_to(REPO)}: {sorted(group)}")
    assert families == []
