"""Headless Chromium for tests: Debian's ``/usr/bin/chromium`` driven by Playwright.

Never ``playwright install`` (it downloads a browser): Playwright's Python package drives the
system browser through ``executable_path``. ``.ci/setup`` installs both (the ``chromium``
Debian package when missing, ``playwright`` pinned in requirements).

    with chromium_page() as (page, errors):
        page.goto(url)
        ...
        assert not errors   # console errors and uncaught page exceptions
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("DETECTOR_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-dev-shm-usage"]


@contextmanager
def chromium_page(timeout_s: float = 20.0) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page in headless Chromium and the list its console errors are appended to."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=timeout_s * 1000)
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout_s * 1000)
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            yield page, errors
        finally:
            browser.close()
