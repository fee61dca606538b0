"""The live page in a real browser (headless Debian Chromium through Playwright).

Two feeds are published at a steady rate (``helpers.web_feed``); the page must show both
images changing (at least 10 different frames), figures that change, and no console error.
"""

from __future__ import annotations

import contextlib
import hashlib
import time

from helpers.browser import console_errors
from helpers.web_feed import Publisher, numbered, record_for, result_for

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
            " === 'running'"
        )
        for key in ("0", "1"):
            img = f"img[data-key='{key}']"
            page.wait_for_function(f'document.querySelector("{img}")?.naturalWidth === 320')
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


class _File:
    """What the feed reads of a file source: its frame count (``info``)."""

    class info:  # read as an attribute, like SourceInfo
        frame_count = 40
        live = False

    def read(self) -> None:
        return None


def test_a_file_shows_progress_short_names_and_its_final_figures_at_1280x800(page):
    errors = console_errors(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    long_path = "/srv/cameras/archive/2026/december/front-door/clip.mp4"
    hub = Hub()
    feed = hub.add_feed("clip", long_path, live=False)
    feed.watch(_File())
    sink = WebSink(feed, lambda c: "person", record_for)
    server = WebServer(hub, port=0, title="one file")
    with server:
        page.goto(server.url)
        for i in range(20):
            image = numbered(i, (1280, 720))
            sink.write(result_for(i, image), image)
            time.sleep(0.05)
        cell = "document.querySelector(\"[data-key='0'] td[data-field=progress]\").textContent"
        page.wait_for_function(f"{cell}.includes(' / 40 (')")
        state = page.text_content("[data-key='0'] td[data-field=state]")
        assert state == "running"
        header = page.locator("section.source h2")
        assert header.text_content() == "clip" and header.get_attribute("title") == long_path
        # every figure and the whole frame visible without scrolling
        page.wait_for_function("document.querySelector(\"img[data-key='0']\")?.naturalWidth > 0")
        for selector in ("img[data-key='0']", "[data-field=viewers]", "[data-field=last]"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 800, (selector, box)
        for i in range(20, 40):  # the end comes faster than the page polls
            image = numbered(i, (1280, 720))
            sink.write(result_for(i, image), image)
    # the server has stopped: the page shows the run's final figures, not the last poll's
    page.wait_for_function(f"{cell}.startsWith('40 / 40')", timeout=10_000)
    assert page.text_content("[data-key='0'] td[data-field=frame]").startswith("39")
    # polls after the server stopped are refused, and the page says the run has ended
    assert [e for e in errors if "ERR_CONNECTION_REFUSED" not in e] == []


class _Camera:
    """A live source that always has a frame (``info`` read as an attribute)."""

    class info:
        frame_count = None
        live = True

    def read(self) -> object:
        return object()


def test_the_page_tells_a_silent_camera_from_a_blocked_pipeline(page):
    errors = console_errors(page)
    hub = Hub(stalled_after_s=1.0)
    quiet = hub.add_feed("quiet", "rtsp://cam/quiet", live=True)
    stuck = hub.add_feed("stuck", "rtsp://cam/stuck", live=True)
    camera = stuck.watch(_Camera())
    sinks = [WebSink(f, lambda c: "person", record_for) for f in (quiet, stuck)]
    cell = "document.querySelector(\"[data-key='{}'] td[data-field=state]\").textContent"
    with WebServer(hub, port=0) as server:
        page.goto(server.url)
        page.wait_for_selector("section.source[data-key='1']")
        assert page.text_content("[data-key='0'] td[data-field=state]") == "starting"
        for i in range(3):
            image = numbered(i, (320, 240))
            for sink in sinks:
                camera.read()
                sink.write(result_for(i, image), image)
        for key in "01":
            page.wait_for_function(f"{cell.format(key)} === 'running'")
        # the quiet camera sends nothing more; the other's frames keep arriving, none come out
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and stuck.health() != "blocked":
            camera.read()
            time.sleep(0.05)
        page.wait_for_function(f"{cell.format(0)} === 'stalled'")
        page.wait_for_function(f"{cell.format(1)} === 'blocked'")
        title = page.get_attribute("[data-key='1'] td[data-field=state] span", "title")
        assert "pipeline is the slow side" in title
        sinks[0].close()
        page.wait_for_function(f"{cell.format(0)} === 'ended'")
    assert [e for e in errors if "ERR_CONNECTION_REFUSED" not in e] == []
