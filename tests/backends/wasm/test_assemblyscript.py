"""Builds the AssemblyScript example with the real compiler and runs it.

Needs Node/npm and the npm registry (CI has both); skipped, saying why, otherwise.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from runtimed.backends import prepare_origin
from runtimed.backends.base import InvalidOrigin
from tests.wasm.harness import EXAMPLES, Host, call, manifest, started, text_of

SOURCE = EXAMPLES / "assemblyscript"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def word_count_wasm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (shutil.which("npm") and shutil.which("npx") and shutil.which("node")):
        pytest.skip("node/npm not on PATH: cannot build the AssemblyScript example")
    work = tmp_path_factory.mktemp("as")
    shutil.copytree(SOURCE, work / "src", ignore=shutil.ignore_patterns("node_modules", "build"))
    src = work / "src"
    install = _run(["npm", "install", "--no-audit", "--no-fund"], src)
    if install.returncode != 0:
        pytest.skip(f"npm install assemblyscript failed (registry unreachable?): {install.stderr.strip()[-300:]}")
    build = _run(["npx", "asc", "assembly/index.ts", "--runtime", "stub", "--use", "abort=", "-O3",
                  "-o", "build/word_count.wasm"], src)
    assert build.returncode == 0, build.stderr
    return src / "build" / "word_count.wasm"


async def test_assemblyscript_word_count(word_count_wasm: Path, tmp_path: Path) -> None:
    b = await started(word_count_wasm, Host(tmp_path))
    assert [t["name"] for t in (await b.introspect()).tools] == ["word_count"]
    assert b.describe()["jsonTools"] == 1 and b.describe()["hostImports"] == []
    r = await call(b, "word_count", {"text": "the quick  brown\nfox — héllo"})
    assert r["isError"] is False
    assert r["structuredContent"] == {"words": 6, "characters": 28}
    r = await call(b, "word_count", {"nope": 1})
    assert r["isError"] is True and text_of(r) == 'expected {"text": string}'


def test_without_abort_flag_the_import_is_refused(word_count_wasm: Path, tmp_path: Path) -> None:
    """The README's point: a default build imports env.abort, which ABI v1 refuses."""
    src = word_count_wasm.parent.parent
    out = src / "build" / "with_abort.wasm"
    build = _run(["npx", "asc", "assembly/index.ts", "--runtime", "stub", "-O3", "-o", str(out)], src)
    assert build.returncode == 0, build.stderr
    with pytest.raises(InvalidOrigin) as e:
        prepare_origin(manifest(out), Host(tmp_path).settings)
    assert "imports env.abort" in str(e.value) and "--use abort=" in str(e.value)
