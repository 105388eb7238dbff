"""The real headless browser of the browser tests: Debian's ``chromium`` driven by Playwright.

Owns finding it (``CHROMIUM_PATH``, default ``/usr/bin/chromium``), the flags it runs with, and
skipping when Playwright or chromium is missing (a failure under ``CI=true``). Used by the
status-page tests (``tests/http/test_status_page.py``) and the authorization server's login
(``tests/support/oauth.py``). Must not install anything and must not fake a browser.

    sync_playwright = playwright_or_skip()
    with launch_chromium() as browser:   # a playwright.sync_api.Browser
        ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(problem: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run under CI: {problem}")
    pytest.skip(problem)


def playwright_or_skip() -> Any:
    """``playwright.sync_api.sync_playwright``; skips (fails under CI=true) when Playwright or chromium is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright for Python is not installed (pip install playwright)")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _missing(f"chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    return sync_playwright


@contextlib.contextmanager
def launch_chromium() -> Iterator[Any]:
    """A headless chromium (``playwright.sync_api.Browser``) for the block."""
    sync_playwright = playwright_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()
