"""Sinks: video read back, size mismatch, JSON lines, images, run folders, window probe."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest
from helpers.tiny_models import read_video
from helpers.xvfb import Xvfb

from detector.errors import SinkError
from detector.labels import LabelMap
from detector.outputs import (
    FALLBACK_FPS,
    ImageSink,
    JsonlSink,
    VideoSink,
    WindowSink,
    display_available,
    make_run_dir,
    write_json,
)
from detector.paths import PROJECT_ROOT as ROOT
from detector.types import Detections, Frame, FrameResult

W, H = 64, 48


def result(
    i: int, *, w: int = W, h: int = H, name: str | None = None, dets=None, fresh: bool = True
) -> FrameResult:
    img = np.full((h, w, 3), (i * 20) % 256, np.uint8)
    frame = Frame(i, 100.0 + i / 10, img, name)
    return FrameResult(
        frame,
        dets if dets is not None else Detections.empty(),
        fresh,
        i if fresh else i - 1,
        12.5 if fresh else None,
    )


@pytest.mark.parametrize("suffix, fourcc", [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_video_written_and_read_back(tmp_path, suffix, fourcc):
    path = tmp_path / f"out{suffix}"
    with VideoSink(path, fps=10) as sink:
        assert sink.codec == fourcc
        for i in range(12):
            r = result(i)
            sink.write(r, r.frame.image)
    (count, fps, w, h), frames = read_video(path)
    assert (count, fps, w, h) == (12, 10.0, W, H)
    assert len(frames) == 12
    # Frame order kept: grey level i*20 comes back within codec error.
    levels = [float(f.mean()) for f in frames]
    assert all(abs(lv - i * 20) < 6 for i, lv in enumerate(levels)), levels


def test_mismatched_frame_size_is_resized_not_dropped(tmp_path, caplog):
    path = tmp_path / "mixed.avi"
    with VideoSink(path, fps=25) as sink:
        for i in range(3):
            r = result(i)
            sink.write(r, r.frame.image)
        big = result(3, w=100, h=80)
        sink.write(big, big.frame.image)
        assert sink.frames_resized == 1
    (count, _, w, h), frames = read_video(path)
    assert (count, w, h, len(frames)) == (4, W, H, 4)
    assert "resizing" in caplog.text


def test_unknown_fps_falls_back_to_30(tmp_path, caplog):
    for fps in (None, 0, float("nan")):
        sink = VideoSink(tmp_path / "a.mp4", fps=fps)
        assert sink.fps == FALLBACK_FPS
        sink.close()
    assert "30 fps" in caplog.text


def test_video_finalized_on_error_and_close_idempotent(tmp_path):
    path = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError), VideoSink(path, fps=5) as sink:
        for i in range(4):
            sink.write(result(i), result(i).frame.image)
        raise RuntimeError("boom")
    assert sink.closed
    sink.close()  # again: no error
    (count, fps, _, _), frames = read_video(path)
    assert count == 4 and len(frames) == 4 and fps == 5.0
    with pytest.raises(SinkError, match="closed"):
        sink.write(result(5), result(5).frame.image)


def test_video_errors(tmp_path):
    with pytest.raises(SinkError, match="codec"):
        VideoSink(tmp_path / "a.mkv", fps=10)
    (tmp_path / "taken.mp4").mkdir()  # a folder where the file should go
    sink = VideoSink(tmp_path / "taken.mp4", fps=10)
    with pytest.raises(SinkError) as err:
        sink.write(result(0), result(0).frame.image)
    assert "taken.mp4" in str(err.value) and err.value.hint
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SinkError, match="cannot create folder"):
        VideoSink(blocker / "sub" / "v.mp4", fps=10).write(None, result(0).frame.image)


def test_no_frames_no_file(tmp_path):
    VideoSink(tmp_path / "empty.mp4", fps=10).close()
    assert not (tmp_path / "empty.mp4").exists()


def test_jsonl_lines_parse(tmp_path):
    labels = LabelMap({1: "person"})
    d = Detections(
        np.array([[1.26, 2.0, 30.04, 40.5], [5, 5, 9, 9]]),
        np.array([0.91234, 0.6]),
        np.array([1, 77]),
    )
    path = tmp_path / "detections.jsonl"
    with JsonlSink(path, labels, "samples/vtest.avi") as sink:
        sink.write(result(0, dets=d), result(0).frame.image)
        sink.write(result(1, dets=d, fresh=False), result(1).frame.image)
        # Flushed per line: readable before close.
        assert len(path.read_text().splitlines()) == 2
        sink.write(result(2, name="dog.jpg"), result(2).frame.image)
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["frame"] for x in lines] == [0, 1, 2]
    first = lines[0]
    assert first["source"] == "samples/vtest.avi" and first["fresh"] is True
    assert first["timestamp_s"] == 100.0 and first["inference_ms"] == 12.5
    assert first["detections"][0] == {
        "label": "person",
        "class_id": 1,
        "score": 0.9123,
        "box_xyxy": [1.3, 2.0, 30.0, 40.5],
    }
    assert first["detections"][1]["label"] == "class 77"
    assert lines[1]["fresh"] is False and lines[1]["detected_frame"] == 0
    assert lines[1]["inference_ms"] is None
    assert lines[2]["name"] == "dog.jpg" and lines[2]["detections"] == []


def test_image_sink_names_and_collisions(tmp_path):
    out = tmp_path / "images"
    with ImageSink(out) as sink:
        for i, name in enumerate(["dog.jpg", None, "dog.png"]):
            r = result(i, name=name)
            sink.write(r, r.frame.image)
    assert sorted(p.name for p in out.iterdir()) == ["000001.jpg", "dog.jpg", "dog_000002.jpg"]
    img = cv2.imread(str(out / "dog.jpg"))
    assert img.shape == (H, W, 3)


def test_image_sink_imwrite_failure_is_sink_error(tmp_path):
    out = tmp_path / "gone"
    sink = ImageSink(out, ext="png")
    out.rmdir()  # the folder is gone: the write fails
    with pytest.raises(SinkError, match="cannot write image"):
        sink.write(result(0), result(0).frame.image)


def test_image_sink_full_disk_is_sink_error_and_leaves_no_file(tmp_path, monkeypatch):
    import detector.imagefiles as imagefiles

    class FullDisk(io.BytesIO):
        def write(self, data):  # what a full disk says when the bytes reach it
            raise OSError(errno.ENOSPC, "No space left on device")

    sink = ImageSink(tmp_path)
    monkeypatch.setattr(imagefiles.os, "fdopen", lambda fd, mode: (os.close(fd), FullDisk())[1])
    with pytest.raises(SinkError, match="No space left") as err:
        sink.write(result(0), result(0).frame.image)
    assert "disk" in (err.value.hint or "")
    assert list(tmp_path.iterdir()) == []  # neither a 0-byte image nor the temporary file


def test_image_sink_failure_leaves_no_half_image(tmp_path, monkeypatch):
    import errno
    import os

    def full_disk(src, dst):  # the data went down, the rename cannot: nothing half-written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    sink = ImageSink(tmp_path / "images")
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(SinkError, match="disk"):
        sink.write(result(0), result(0).frame.image)
    assert list((tmp_path / "images").iterdir()) == []  # neither the image nor its .part


def test_image_sink_rejects_unknown_extension(tmp_path):
    with pytest.raises(SinkError, match="cannot write"):
        ImageSink(tmp_path, ext=".nope")


def test_run_dir_never_overwrites(tmp_path):
    base = tmp_path / "runs"
    dirs = [make_run_dir(base, "vtest") for _ in range(3)]
    assert [d.name for d in dirs] == ["vtest", "vtest2", "vtest3"]
    assert all(d.is_dir() for d in dirs)
    (base / "vtest4").mkdir()  # taken by someone else
    assert make_run_dir(base, "vtest").name == "vtest5"
    with pytest.raises(SinkError):
        make_run_dir(base, "../escape")


def test_run_dir_concurrent_runs_get_distinct_folders(tmp_path):
    got: list = []
    threads = [
        threading.Thread(target=lambda: got.append(make_run_dir(tmp_path, "r"))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(set(got)) == 8


def test_write_json_is_atomic(tmp_path):
    p = write_json(tmp_path / "run.json", {"frames": 3, "path": tmp_path})
    assert json.loads(p.read_text()) == {"frames": 3, "path": str(tmp_path)}
    assert not list(tmp_path.glob(".run.json*"))


def test_window_sink_without_display_does_not_crash(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    assert display_available() is False
    with pytest.raises(SinkError) as err:
        WindowSink("test")
    assert "DISPLAY" in str(err.value) and "--show" in str(err.value)


def test_display_probe_with_dead_display_in_child_process():
    # A DISPLAY naming no server must give False, not an abort (run in a child to be safe).
    code = "from detector.outputs.window import display_available; print(display_available())"
    env = {**os.environ, "DISPLAY": ":987"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# What a window manager's close button does: send WM_DELETE_WINDOW to the window.
WM_DELETE = r"""
import ctypes, sys
x = ctypes.CDLL("libX11.so.6")
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XInternAtom.restype = ctypes.c_ulong
x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
                ("l", ctypes.c_long * 5)]
class XEvent(ctypes.Union):
    _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]
x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                         ctypes.POINTER(XEvent)]
x.XFlush.argtypes = x.XCloseDisplay.argtypes = [ctypes.c_void_p]
d = x.XOpenDisplay(None)
ev = XEvent()
ev.xclient.type, ev.xclient.window, ev.xclient.format = 33, int(sys.argv[1]), 32
ev.xclient.message_type = x.XInternAtom(d, b"WM_PROTOCOLS", 0)
ev.xclient.l[0] = x.XInternAtom(d, b"WM_DELETE_WINDOW", 0)
x.XSendEvent(d, int(sys.argv[1]), 0, 0, ctypes.byref(ev))
x.XFlush(d)
x.XCloseDisplay(d)
"""


@pytest.mark.skipif(
    not (shutil.which("Xvfb") and shutil.which("xdotool")), reason="needs Xvfb and xdotool"
)
@pytest.mark.parametrize("action", ["key q", "key Escape", "close"])
def test_window_sink_quits_under_xvfb(tmp_path, action):
    (tmp_path / "wm_delete.py").write_text(WM_DELETE)
    send = (
        f"['xdotool', 'key', '--window', wid, '{action.split()[1]}']"
        if action != "close"
        else f"[sys.executable, {str(tmp_path / 'wm_delete.py')!r}, wid]"
    )
    script = tmp_path / "win.py"
    script.write_text(
        "import numpy as np, subprocess, sys, time\n"
        "from detector.outputs import WindowSink, display_available\n"
        "assert display_available()\n"
        "img = np.zeros((48, 64, 3), np.uint8)\n"
        "with WindowSink('detector-test', wait_ms=20) as w:\n"
        "    for i in range(500):\n"
        "        w.write(None, img)\n"
        "        time.sleep(0.02)\n"
        "        if i == 5:  # the window lives in its own process: wait until it is mapped\n"
        "            wid = subprocess.run(['xdotool', 'search', '--sync', '--onlyvisible',\n"
        "                                  '--name', 'detector-test'],\n"
        "                                 capture_output=True, text=True).stdout.split()[0]\n"
        f"            subprocess.run({send}, check=True)\n"
        "        if w.quit_requested:\n"
        "            print('quit', i); sys.exit(0)\n"
        "sys.exit(3)\n"
    )
    with Xvfb() as xvfb:
        env = {**os.environ, "DISPLAY": xvfb.display, "PYTHONPATH": ROOT}
        out = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stdout + out.stderr
        assert out.stdout.startswith("quit")
