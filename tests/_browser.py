"""What the browser tests share: the Chromium to drive, its flags, the skip rules and
the browser launched for the ``browser`` fixture of ``tests/conftest.py``."""

from __future__ import annotations

import os
import shutil

import pytest


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


CHROMIUM = _chromium()
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - playwright is a test dependency
    sync_playwright = None

#: The ``pytestmark`` of a browser test module: skip, saying why, without Chromium or Playwright.
BROWSER_SKIPS = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium executable found "
                       "(/usr/bin/chromium, or set CHROMIUM=path)"),
    pytest.mark.skipif(sync_playwright is None, reason="playwright is not installed"),
]

# Software WebGL (SwiftShader) so that the scene renders without a GPU.
ARGS = ["--no-sandbox", "--headless=new", "--use-angle=swiftshader",
        "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run", "--disable-default-apps", "--disable-extensions"]


def launch_browser():
    """A headless Chromium with the flags above, for ``tests/conftest.py``'s fixture."""
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()
