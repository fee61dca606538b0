"""The test camera itself: OpenCV reads it, stop closes the port, restart reuses it, stall
sends nothing, basic auth is enforced."""

from __future__ import annotations

import socket
import time

import cv2
import pytest
from helpers.mjpeg_server import MjpegServer


def _open(url: str, timeout_ms: int = 3000) -> cv2.VideoCapture:
    return cv2.VideoCapture(
        url,
        cv2.CAP_FFMPEG,
        [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms],
    )


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_opencv_reads_numbered_frames_from_it() -> None:
    with MjpegServer(fps=30, size=(160, 120)) as cam:
        assert cam.url.startswith("http://127.0.0.1:")
        cap = _open(cam.url)
        try:
            assert cap.isOpened()
            ok, image = cap.read()
            assert ok and image.shape == (120, 160, 3)
            first = int(image[60, 80, 0])
            ok, image = cap.read()
            assert ok and abs(int(image[60, 80, 0]) - (first + 1)) <= 3  # grey level = index
        finally:
            cap.release()


def test_stop_closes_the_port_and_start_reuses_it() -> None:
    with MjpegServer() as cam:
        port = cam.port
        assert _port_open(port)
        cam.stop()
        assert not _port_open(port)
        cam.start()
        assert cam.port == port and _port_open(port)


def test_stall_keeps_the_connection_but_sends_nothing() -> None:
    with MjpegServer(fps=50) as cam:
        cap = _open(cam.url, timeout_ms=1000)
        try:
            assert cap.read()[0]
            cam.stall()
            time.sleep(0.2)
            sent = cam.frames_sent
            time.sleep(0.3)
            assert cam.frames_sent == sent
            cam.resume()
            assert cam.wait_for_frames(sent + 5, timeout_s=5.0)
        finally:
            cap.release()


@pytest.mark.parametrize("with_credentials", [True, False])
def test_basic_auth(with_credentials: bool) -> None:
    with MjpegServer(user="viewer", password="s3cret-pw") as cam:
        assert "s3cret-pw" in cam.url_with_credentials and "s3cret" not in cam.url
        cap = _open(cam.url_with_credentials if with_credentials else cam.url)
        try:
            assert cap.isOpened() is with_credentials
        finally:
            cap.release()
