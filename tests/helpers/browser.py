"""A real headless browser for tests: Debian's ``/usr/bin/chromium`` driven by Playwright, and a
local HTTP server (127.0.0.1 only, with byte ranges, as browsers fetch media) for it to load.

Playwright launches the system Chromium through ``executable_path`` (``playwright install``
is never run: it downloads a browser build). ``bash .ci/setup`` installs the Debian package
when missing (as root); elsewhere a test skips with the reason, except under CI, where a
missing browser fails the test.

Fixtures (registered for every test by ``tests/conftest.py``)::

    def test_page(browser, tmp_path):
        with serve_directory(tmp_path) as base_url:
            page = browser.new_page()
            page.goto(f"{base_url}/index.html")

or, outside pytest fixtures: ``with chromium() as browser: ...``.
"""

from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("DETECTOR_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _missing() -> str | None:
    """Why the browser cannot run here, or ``None``."""
    if not CHROMIUM.is_file() or not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing: install Debian's chromium (bash .ci/setup, as root)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (bash .ci/setup installs the test requirements)"
    return None


def require_chromium() -> None:
    """Skip the calling test when the browser is missing; under CI, fail instead."""
    problem = _missing()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


@contextmanager
def chromium(timeout_s: float = 30.0) -> Iterator[Any]:
    """A headless Chromium ``Browser`` (Playwright sync API), closed on exit."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            timeout=timeout_s * 1000,
        )
        try:
            yield browser
        finally:
            browser.close()


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single byte ranges (``Range: bytes=a-b``), quietly."""

    def send_head(self) -> Any:  # type: ignore[override]
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip()) if rng else None
        path = Path(self.translate_path(self.path))
        if m is None or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first_s, last_s = m.groups()
        if first_s:
            first, last = int(first_s), int(last_s) if last_s else size - 1
        else:  # a suffix range: the last N bytes
            first, last = max(0, size - int(last_s or 0)), size - 1
        last = min(last, size - 1)
        if first > last:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        f = path.open("rb")
        f.seek(first)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.send_header("Content-Length", str(last - first + 1))
        self.end_headers()
        self._remaining = last - first + 1
        return f

    def copyfile(self, source: Any, outputfile: Any) -> None:
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            shutil.copyfileobj(source, outputfile)
            return
        while remaining > 0:
            chunk = source.read(min(65536, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)
        self._remaining = None

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")  # so the browser may seek
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_directory(directory: str | Path) -> Iterator[str]:
    """Serve ``directory`` over HTTP on 127.0.0.1 (a free port); yields the base URL."""
    handler = partial(_RangeHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole session (pages are cheap, launches are not)."""
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (own context: no shared cache or storage), closed after the test."""
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


# How a test reads what a <video> element made of a file: readyState, duration, error.
VIDEO_PROBE_HTML = """<!doctype html><html><body>
<video id="v" src="{src}" preload="auto" muted playsinline></video>
<script>
const v = document.getElementById("v");
window.probe = new Promise((resolve) => {{
  const done = () => resolve({{readyState: v.readyState, duration: v.duration,
    width: v.videoWidth, height: v.videoHeight,
    error: v.error ? v.error.code + " " + v.error.message : null}});
  v.addEventListener("loadeddata", done);
  v.addEventListener("error", done);
  setTimeout(done, 15000);
}});
</script></body></html>
"""


def probe_video(page: Any, directory: str | Path, file_name: str) -> dict[str, Any]:
    """Load ``directory/file_name`` in a ``<video>`` element served over local HTTP and return
    ``{readyState, duration, width, height, error}`` as the browser reports them."""
    directory = Path(directory)
    html = directory / "_probe.html"
    html.write_text(VIDEO_PROBE_HTML.format(src=file_name), encoding="utf-8")
    try:
        with serve_directory(directory) as base_url:
            page.goto(f"{base_url}/_probe.html")
            return dict(page.evaluate("window.probe"))
    finally:
        html.unlink(missing_ok=True)


def console_errors(page: Any) -> list[str]:
    """A list that fills with ``page``'s console errors and uncaught exceptions as they come."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return errors
