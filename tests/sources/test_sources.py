"""Sources on media made in the test: order, natural sort, skipped images, errors."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers.media import STEP, grey_index, make_video

from detector.errors import SourceError
from detector.sources import PacedSource, open_source
from detector.sources.images import natural_key


def read_all(source) -> list[tuple[np.ndarray, str | None]]:
    out = []
    with source:
        while (item := source.read()) is not None:
            out.append(item)
    return out


def test_video_file_frames_in_order_and_info(tmp_path):
    path = make_video(tmp_path / "clip.avi", n=12, fps=25)
    source = open_source(str(path))
    assert source.info.kind == "video" and not source.info.live
    assert (source.info.width, source.info.height) == (64, 48)
    assert source.info.fps == pytest.approx(25.0)
    assert source.info.frame_count == 12
    items = read_all(source)
    assert [grey_index(img) for img, _ in items] == list(range(12))
    assert all(img.dtype == np.uint8 and img.shape == (48, 64, 3) for img, _ in items)
    assert source.read() is None  # closed: no crash, just the end


def write_image(path: Path, level: int) -> None:
    assert cv2.imwrite(str(path), np.full((10, 12, 3), level, np.uint8))


def test_folder_natural_sort_and_corrupt_image_skipped(tmp_path, caplog):
    for i in (10, 2, 1):
        write_image(tmp_path / f"img{i}.png", STEP * i)
    write_image(tmp_path / "IMG3.jpg", STEP * 3)
    (tmp_path / "img5.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(str(tmp_path))
    assert source.info.kind == "images" and not source.info.live
    assert source.info.frame_count == 5
    with caplog.at_level(logging.WARNING):
        items = read_all(source)
    assert [name for _, name in items] == ["img1.png", "img2.png", "IMG3.jpg", "img10.png"]
    assert [grey_index(img) for img, _ in items] == [1, 2, 3, 10]
    assert source.skipped == 1
    assert "img5.jpg" in caplog.text


def test_glob_and_single_image(tmp_path):
    for i in (3, 20, 1):
        write_image(tmp_path / f"f{i}.png", STEP * i)
    write_image(tmp_path / "other.jpg", 0)
    items = read_all(open_source(str(tmp_path / "f*.png")))
    assert [name for _, name in items] == ["f1.png", "f3.png", "f20.png"]
    single = open_source(str(tmp_path / "f3.png"))
    assert single.info.frame_count == 1
    assert [grey_index(img) for img, _ in read_all(single)] == [3]


def test_natural_key():
    names = ["a10.jpg", "a2.jpg", "A1.jpg", "b.jpg", "a2b.jpg"]
    assert sorted(names, key=natural_key) == ["A1.jpg", "a2.jpg", "a2b.jpg", "a10.jpg", "b.jpg"]


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda d: str(d / "missing.mp4"), "file does not exist"),
        (lambda d: str(d), "empty folder"),
        (lambda d: str(d / "*.png"), "matches nothing"),
    ],
)
def test_errors_quote_the_path(tmp_path, make, needle):
    uri = make(tmp_path)
    with pytest.raises(SourceError) as err:
        open_source(uri)
    assert needle in str(err.value)
    assert repr(uri) in str(err.value)
    assert err.value.hint


def test_not_a_video(tmp_path):
    bogus = tmp_path / "movie.mp4"
    bogus.write_text("this is text, not a video")
    with pytest.raises(SourceError, match="not a video OpenCV can decode"):
        open_source(str(bogus))


def test_undecodable_single_image(tmp_path):
    bogus = tmp_path / "photo.png"
    bogus.write_text("not a png")
    with pytest.raises(SourceError, match="decode failed"):
        open_source(str(bogus))


def test_missing_camera_index():
    with pytest.raises(SourceError, match="camera index not available"):
        open_source("97")


def test_paced_source_is_live_and_keeps_frames(tmp_path):
    inner = open_source(str(make_video(tmp_path / "clip.avi", n=4, fps=200)))
    paced = PacedSource(inner)
    assert paced.info.live and paced.info.fps == pytest.approx(200)
    assert [grey_index(img) for img, _ in read_all(paced)] == [0, 1, 2, 3]
    assert inner.read() is None  # closing the wrapper closed the inner source


def test_http_url_through_ffmpeg(tmp_path):
    import functools
    import http.server
    import threading

    make_video(tmp_path / "clip.avi", n=6)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/clip.avi"
        source = open_source(url)
        assert source.info.kind == "stream" and not source.info.live  # a remote file
        assert [grey_index(img) for img, _ in read_all(source)] == list(range(6))
        with pytest.raises(SourceError, match="cannot open stream"):
            open_source(f"http://127.0.0.1:{server.server_port}/missing.avi")
    finally:
        server.shutdown()
        thread.join(5)


def test_stream_password_is_redacted():
    with pytest.raises(SourceError) as err:
        open_source("rtsp://admin:secret@127.0.0.1:1/stream")
    assert "secret" not in str(err.value) and "admin:***@" in str(err.value)


def test_video_without_frames_is_an_error_not_a_silent_empty_run(tmp_path):
    path = make_video(tmp_path / "empty.avi", n=0)
    source = open_source(str(path))
    with pytest.raises(SourceError, match="opened but delivered no frame"), source:
        source.read()


def test_parse_source_reads_a_uri_once_into_a_typed_spec(tmp_path):
    from detector.sources import parse_source
    from detector.types import SourceKind

    cam = parse_source("0")
    assert (cam.kind, cam.live, cam.device, cam.run_name) == (SourceKind.CAMERA, True, 0, "camera0")
    stream = parse_source("rtsp://user:secret@cam.local:554/live")
    assert stream.kind is SourceKind.STREAM and stream.live and stream.run_name == "cam.local"
    assert "secret" not in stream.shown and "user:***@" in stream.shown
    remote = parse_source("https://host/clips/a.mp4?x=1")
    assert remote.kind is SourceKind.STREAM and not remote.live
    assert parse_source("/data/clips/street view.mp4").run_name == "street_view"
    assert parse_source("/data/clips/a.mp4").kind is SourceKind.VIDEO
    folder = parse_source(str(tmp_path))
    assert (folder.kind, folder.images) == (SourceKind.IMAGES, "folder")
    assert folder.run_name == tmp_path.name
    glob = parse_source("/data/photos/*.jpg")
    assert (glob.kind, glob.images, glob.run_name) == (SourceKind.IMAGES, "glob", "photos")
    assert parse_source("/data/x.png").images == "file"
