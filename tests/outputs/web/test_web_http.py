"""The web view over real HTTP: MJPEG streams (slow, vanished and many viewers), status, events.

A publisher thread (``helpers.web_feed``) stands in for the pipeline's render stage.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from helpers.web_feed import Publisher, record_for, wait_until

from detector.config import parse_address
from detector.errors import ConfigError, SinkError
from detector.outputs.web import Hub, WebServer, WebSink

WAIT_S = 10.0


@pytest.fixture
def served() -> Iterator[tuple[WebServer, WebSink]]:
    hub = Hub()
    feed = hub.add_feed("clip", "clip.mp4", live=True)
    sink = WebSink(feed, lambda c: "person" if c == 1 else f"class {c}", record_for)
    with WebServer(hub, port=0, send_timeout_s=1.0) as server:
        yield server, sink


def open_stream(
    server: WebServer, path: str = "/stream.mjpg", rcvbuf: int | None = None
) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(WAIT_S)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
    return sock


def read_jpegs(sock: socket.socket, count: int) -> list[np.ndarray]:
    """Read the response head, then ``count`` JPEG parts; decode them."""
    f = sock.makefile("rb")
    status = f.readline()
    assert b" 200 " in status, status
    headers = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    assert headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
    images = []
    while len(images) < count:
        assert f.readline() == b"--frame\r\n"
        part = {}
        while (line := f.readline()) != b"\r\n":
            k, _, v = line.decode().partition(":")
            part[k.strip().lower()] = v.strip()
        assert part["content-type"] == "image/jpeg"
        data = f.read(int(part["content-length"]))
        assert f.read(2) == b"\r\n"
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (240, 320, 3)
        images.append(image)
    return images


def get_json(server: WebServer, path: str) -> dict:
    with urllib.request.urlopen(f"{server.url.rstrip('/')}{path}", timeout=WAIT_S) as r:
        assert r.headers["Content-Type"] == "application/json"
        return json.loads(r.read())


def test_stream_sends_the_newest_frames_in_order(served):
    server, sink = served
    with Publisher(sink), contextlib.closing(open_stream(server)) as sock:
        images = read_jpegs(sock, 12)
    # Frames are distinct and in publication order (grey level = 7 * index mod 256).
    levels = [int(img[-1, -1, 0]) for img in images]
    assert len(set(levels)) == 12
    feed = sink.feed
    assert feed.encodes <= feed.seq


def test_five_viewers_cost_one_encode_per_frame(served):
    server, sink = served
    socks = [open_stream(server) for _ in range(5)]
    try:
        with Publisher(sink, fps=30):
            results: list[list[np.ndarray]] = [[] for _ in socks]
            threads = [
                threading.Thread(target=lambda i=i: results[i].extend(read_jpegs(socks[i], 15)))
                for i in range(5)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=WAIT_S * 2)
            assert all(len(r) == 15 for r in results)
            assert wait_until(lambda: sink.feed.viewers == 5)
            feed = sink.feed
            # 75 frames went out to viewers, yet no frame was encoded twice.
            assert 15 <= feed.encodes <= feed.seq
    finally:
        for s in socks:
            s.close()


def test_a_viewer_that_never_reads_is_dropped_and_others_go_on(served):
    server, sink = served
    stalled = open_stream(server, rcvbuf=4096)  # reads nothing, ever
    with Publisher(sink, fps=60) as pub:
        # Its socket buffers fill, the 1 s send timeout fires, the server drops it quietly.
        assert wait_until(lambda: sink.feed.viewers_dropped >= 1, timeout_s=30)
        with contextlib.closing(open_stream(server)) as good:
            assert len(read_jpegs(good, 10)) == 10
        # The publisher went on all along (a write is a reference and counters, no I/O).
        written = pub.written
        assert wait_until(lambda: pub.written > written + 10)
    stalled.close()
    assert wait_until(lambda: sink.feed.viewers == 0)


def test_a_viewer_that_disconnects_mid_frame_is_dropped_quietly(served, caplog):
    server, sink = served
    with Publisher(sink):
        sock = open_stream(server)
        f = sock.makefile("rb")
        while f.readline() != b"--frame\r\n":
            pass
        f.read(100)  # part of a part's head and body, then gone
        f.close()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()  # RST: the server's next write fails
        assert wait_until(lambda: sink.feed.viewers == 0 and sink.feed.viewers_dropped == 1)
        with contextlib.closing(open_stream(server)) as again:
            assert len(read_jpegs(again, 5)) == 5
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "WARNING")]


def test_no_viewer_no_encode(served):
    _, sink = served
    with Publisher(sink) as pub:
        assert wait_until(lambda: pub.written >= 10)
    assert sink.feed.encodes == 0


def test_status_reports_figures_and_events_carry_records(served):
    server, sink = served
    with Publisher(sink, fps=30):
        assert wait_until(lambda: sink.feed.seq >= 20)
        status = get_json(server, "/api/status")
        (src,) = status["sources"]
        assert src["state"] == "connected"
        assert src["name"] == "clip" and src["stream"] == "/stream/0.mjpg"
        assert src["detections"] == {"person": 1}
        assert src["fps"]["output"] > 0 and src["fps"]["inference"] > 0
        assert src["width"] == 320 and src["height"] == 240
        with urllib.request.urlopen(f"{server.url}api/events", timeout=WAIT_S) as r:
            assert r.headers["Content-Type"] == "text/event-stream"
            events = []
            while len(events) < 3:
                line = r.readline().decode()
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        frames = [e["frame"] for e in events]
        assert frames == sorted(frames) and len(set(frames)) == 3
        assert all(e["feed"] == "0" and e["detections"][0]["label"] == "person" for e in events)
    sink.close()
    assert get_json(server, "/api/status")["sources"][0]["state"] == "ended"


def test_page_and_unknown_paths(served):
    server, _ = served
    with urllib.request.urlopen(server.url, timeout=WAIT_S) as r:
        body = r.read().decode()
    assert "<title>detector" in body and "/api/status" in body
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server.url}stream/7.mjpg", timeout=WAIT_S)
    assert err.value.code == 404


def test_streams_end_when_the_server_closes():
    hub = Hub()
    sink = WebSink(hub.add_feed("a", "a", live=True), str, record_for)
    server = WebServer(hub, port=0).start()
    with Publisher(sink):
        sock = open_stream(server)
        read_jpegs(sock, 2)
        server.close()
        sock.settimeout(WAIT_S)
        rest = b""
        while chunk := sock.recv(65536):  # the server ends the response: EOF, no hang
            rest += chunk
        sock.close()


def test_port_in_use_is_a_clear_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SinkError, match=f"port {port} is already in use") as err:
            WebServer(Hub(), port=port).start()
    assert "--serve" in str(err.value)
    assert err.value.exit_code == 1


def test_non_loopback_bind_needs_a_token_or_insecure_and_warns():
    with pytest.raises(ConfigError, match="without an API token") as refused:
        WebServer(Hub(), host="0.0.0.0", port=0).start()
    assert "--insecure" in str(refused.value) and refused.value.exit_code == 2
    # A handler on the server's own logger: independent of what other tests did to the root.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("detector.outputs.web.server")
    logger.addHandler(handler)
    try:
        with WebServer(Hub(), host="0.0.0.0", port=0, insecure=True):
            pass
        with WebServer(Hub(), host="127.0.0.1", port=0):
            pass
    finally:
        logger.removeHandler(handler)
    warned = [r.getMessage() for r in records if "no authentication" in r.getMessage()]
    assert len(warned) == 1 and "0.0.0.0" in warned[0]


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("8080", ("127.0.0.1", 8080)),
        (":9000", ("127.0.0.1", 9000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:8080", ("::1", 8080)),
        (0, ("127.0.0.1", 0)),
    ],
)
def test_parse_address(text, want):
    assert parse_address(text) == want


@pytest.mark.parametrize("bad", ["", "http", "localhost:", "1:99999"])
def test_parse_address_rejects(bad):
    with pytest.raises(ConfigError, match="serve"):
        parse_address(bad)


def test_snapshot_is_the_newest_frame_as_one_jpeg(served):
    server, sink = served
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server.url}snapshot/0.jpg", timeout=WAIT_S)
    assert err.value.code == 404  # no frame yet
    with Publisher(sink):
        assert wait_until(lambda: sink.feed.seq >= 3)
        with urllib.request.urlopen(f"{server.url}snapshot/0.jpg", timeout=WAIT_S) as r:
            assert r.headers["Content-Type"] == "image/jpeg"
            image = cv2.imdecode(np.frombuffer(r.read(), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (240, 320, 3)


def test_events_of_one_source():
    hub = Hub()
    sinks = [WebSink(hub.add_feed(n, n, live=True), str, record_for) for n in ("a", "b")]
    feeds = []
    with (
        WebServer(hub, port=0) as server,
        Publisher(sinks[0]),
        Publisher(sinks[1]),
        urllib.request.urlopen(f"{server.url}api/events?source=1", timeout=WAIT_S) as r,
    ):
        while len(feeds) < 6:
            line = r.readline().decode()
            if line.startswith("data: "):
                feeds.append(json.loads(line[6:])["feed"])
    assert feeds == ["1"] * 6
