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
        page.wait_for_function(f'document.querySelector("{img}").naturalWidth === 320')
        box = page.locator(img).bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.5 + 0.5, box["y"] + box["height"] * 0.25 + 0.5)
        text = page.text_content("[data-key='0'] [data-field=pixel]") or ""
        m = re.fullmatch(r"pixel \[(\d+), (\d+)\] = \[([\d.]+), ([\d.]+)\]", text)
        assert m, text
        x, y, fx, fy = int(m[1]), int(m[2]), float(m[3]), float(m[4])
        assert abs(x - 160) <= 1 and abs(y - 60) <= 1, text  # half a CSS pixel of layout
        assert (fx, fy) == (round(x / 320, 3), round(y / 240, 3))
    assert errors == []
