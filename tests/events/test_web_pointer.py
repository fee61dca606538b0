"""The live page says which pixel is under the pointer (to pick zone and line coordinates)."""

from __future__ import annotations

import re

from helpers.browser import console_errors
from helpers.web_feed import Publisher, record_for

from detector.outputs.web import Hub, WebServer, WebSink


def test_the_pixel_under_the_pointer(page):
    errors = console_errors(page)
    hub = Hub()
    sink = WebSink(hub.add_feed("cam", "cam.mp4", live=True), lambda c: "person", record_for)
    with WebServer(hub, port=0) as server, Publisher(sink, fps=10):
        page.goto(server.url)
        img = "img[data-key='0']"
        page.wait_for_function(f'document.querySelector("{img}")?.naturalWidth === 320')
        for _ in range(5):  # the layout may still move while the status table fills in
            x, y, fx, fy, text = _point_at(page, img, 0.5, 0.25)
            if abs(x - 160) <= 1 and abs(y - 60) <= 1:
                break
        assert abs(x - 160) <= 1 and abs(y - 60) <= 1, text  # half a CSS pixel of layout
        assert (fx, fy) == (round(x / 320, 3), round(y / 240, 3))
    assert errors == []


def _point_at(page, img: str, fx: float, fy: float) -> tuple[int, int, float, float, str]:
    """Move the pointer to (fx, fy) of the image's box; the pixel line the page then shows."""
    box = page.locator(img).bounding_box()
    assert box is not None
    page.mouse.move(0, 0)  # off the image first, so the move below is always a new event
    page.mouse.move(box["x"] + box["width"] * fx + 0.5, box["y"] + box["height"] * fy + 0.5)
    pattern = r"pixel \[(\d+), (\d+)\] = \[([\d.]+), ([\d.]+)\]"
    field = "[data-key='0'] [data-field=pixel]"
    shown = f"document.querySelector(`{field}`)?.textContent ?? ''"
    page.wait_for_function(f"/^{pattern}$/.test({shown})")
    text = page.text_content(field) or ""
    m = re.fullmatch(pattern, text)
    assert m, text
    return int(m[1]), int(m[2]), float(m[3]), float(m[4]), text
