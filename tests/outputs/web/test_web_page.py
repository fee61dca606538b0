"""The live page in a real browser (headless Debian Chromium through Playwright).

Two feeds are published at a steady rate (``helpers.web_feed``); the page must show both
images changing (at least 10 different frames), figures that change, and no console error.
"""

from __future__ import annotations

import contextlib
import hashlib
import time

from helpers.browser import console_errors
from helpers.web_feed import Publisher, record_for

from detector.outputs.web import Hub, WebServer, WebSink


def distinct_frames(page, selector: str, want: int, timeout_s: float = 30.0) -> int:
    """Screenshot the element until ``want`` different pictures were seen; how many were."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    element = page.locator(selector)
    while len(seen) < want and time.monotonic() < deadline:
        seen.add(hashlib.sha1(element.screenshot()).hexdigest())
    return len(seen)


def test_page_shows_live_frames_and_figures_of_every_source(page):
    errors = console_errors(page)
    hub = Hub()
    sinks = [
        WebSink(hub.add_feed(name, f"{name}.mp4", live=True), lambda c: "person", record_for)
        for name in ("left", "right")
    ]
    with (
        WebServer(hub, port=0, title="two clips") as server,
        Publisher(sinks[0], fps=25),
        Publisher(sinks[1], fps=15),
    ):
        page.goto(server.url)
        page.wait_for_selector("section.source[data-key='1'] img")
        assert page.locator("section.source").count() == 2
        assert page.title().startswith("detector")
        page.wait_for_function(
            "document.querySelector(\"[data-key='0'] td[data-field=state]\").textContent"
            " === 'connected'"
        )
        for key in ("0", "1"):
            img = f"img[data-key='{key}']"
            page.wait_for_function(f'document.querySelector("{img}").naturalWidth === 320')
            assert distinct_frames(page, img, 10) >= 10
        frame = "document.querySelector(\"[data-key='0'] td[data-field=frame]\").textContent"
        first = page.evaluate(frame)
        page.wait_for_function(f"{frame} !== {first!r}", timeout=10_000)
        fps = page.text_content("[data-key='0'] td[data-field=fps]")
        assert fps is not None and fps.count("/") == 2 and fps != "0.0 / 0.0 / 0.0"
        assert page.text_content("[data-key='1'] td[data-field=detections]") == "person 1"
        page.wait_for_function(
            "document.querySelector(\"[data-key='1'] [data-field=last]\").textContent"
            ".startsWith('frame ')"
        )
        sinks[1].close()  # that source ends: its state says so, the other goes on
        page.wait_for_function(
            "document.querySelector(\"[data-key='1'] td[data-field=state]\").textContent"
            " === 'ended'"
        )
        assert errors == []


def test_six_sources_all_play_within_the_browser_connection_limit(page):
    """Six sources: four MJPEG streams and two polled snapshots (six connections per server)."""
    errors = console_errors(page)
    hub = Hub()
    sinks = [
        WebSink(hub.add_feed(f"cam{k}", f"cam{k}", live=True), lambda c: "person", record_for)
        for k in range(6)
    ]
    with WebServer(hub, port=0) as server, contextlib.ExitStack() as stack:
        for sink in sinks:
            stack.enter_context(Publisher(sink, fps=12))
        page.goto(server.url)
        page.wait_for_selector("section.source[data-key='5'] img")
        for key in range(6):
            assert distinct_frames(page, f"img[data-key='{key}']", 4) >= 4, key
        # the status figures keep refreshing with every connection slot in use
        frame = "document.querySelector(\"[data-key='5'] td[data-field=frame]\").textContent"
        first = page.evaluate(frame)
        page.wait_for_function(f"{frame} !== {first!r}", timeout=10_000)
        assert "/snapshot/5.jpg" in page.get_attribute("img[data-key='5']", "src")
        assert page.get_attribute("img[data-key='3']", "src") == "/stream/3.mjpg"
        assert errors == []
