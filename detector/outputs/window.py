"""An on-screen window for annotated frames: probed first, then shown by a process of its own.

Why probe: ``cv2.imshow`` from the ``opencv-python`` (Qt) wheel aborts the whole process
(exit 134, no exception) when no X display answers — also when ``DISPLAY`` names a display
with no server. ``XOpenDisplay`` through ctypes asks the X server directly, in milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from detector.errors import SinkError
from detector.types import FrameResult

log = logging.getLogger(__name__)

QUIT_KEYS = frozenset({ord("q"), ord("Q"), 27})  # 27 = Esc
FRAME_HEADER = struct.Struct("<II")
"""Height and width before each BGR frame sent to the window process."""
_PROBES = 3
_PROBE_GAP_S = 0.1


@lru_cache(maxsize=1)
def _opencv_gui() -> str:
    """OpenCV's GUI backend from its build information (``NONE`` for headless wheels)."""
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GUI:"):
            return line.split(":", 1)[1].strip()
    return "UNKNOWN"


def _load_x11() -> ctypes.CDLL | None:
    for name in ("libX11.so.6", ctypes.util.find_library("X11")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


def display_problem() -> str | None:
    """Why a window cannot be shown here, or None when it can."""
    if _opencv_gui().upper() == "NONE":
        return "this OpenCV build has no GUI support (a headless wheel)"
    if sys.platform in ("win32", "darwin"):
        return None
    display = os.environ.get("DISPLAY")
    if not display:
        return "no display: DISPLAY is not set"
    x11 = _load_x11()
    if x11 is None:
        return f"cannot probe display {display!r}: libX11 is not installed"
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
    x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
    # A busy X server (another client connecting at the same moment) can refuse one
    # connection: ask a few times before deciding there is no display.
    for attempt in range(_PROBES):
        handle = x11.XOpenDisplay(None)
        if handle:
            x11.XCloseDisplay(handle)
            return None
        if attempt + 1 < _PROBES:
            time.sleep(_PROBE_GAP_S)
    return f"no X server answers on display {display!r}"


def display_available() -> bool:
    """True when an OpenCV window can be opened without crashing the process."""
    return display_problem() is None


class WindowSink:
    """Shows annotated frames in a window of its own process; q, Esc or closing it quits.

    The window lives in a child process (:mod:`detector.outputs.window_process`) with the
    GUI on its main thread. Qt ends the process that owns a window with ``exit(1)`` when the
    X server goes away, and no Python ``finally`` runs then: in a child that takes only the
    window with it, and the run goes on disk-only with a warning, its outputs and
    ``run.json`` finalized as on any other path. Frames go to the child through a pipe from
    a sender thread holding only the newest frame, so a slow or stuck GUI never slows the
    pipeline (frames it could not show in time are skipped, and counted).

    Args:
        title: Window title.
        wait_ms: Milliseconds ``cv2.waitKey`` waits per frame in the window process (>= 1:
            the window only repaints and reads keys while waiting).

    Attributes:
        quit_requested: True once the user pressed q or Esc or closed the window; the
            caller stops the run (``consume`` returns False).
        failed: True once the window process has ended on its own (the display went away).

    Raises:
        SinkError: No display can be opened (checked before any process is started).
    """

    def __init__(self, title: str = "detector", *, wait_ms: int = 1) -> None:
        problem = display_problem()
        if problem:
            raise SinkError(
                f"cannot open a window: {problem}",
                hint="run without --show (outputs still go to disk), or start an "
                "X server (e.g. Xvfb) and set DISPLAY",
            )
        self.title = title
        self.quit_requested = False
        self.closed = False
        self.failed = False
        self.frames_shown = 0
        self.frames_skipped = 0
        self._newest: np.ndarray | None = None
        self._ready = threading.Condition()
        # never a pipe: a chatty GUI must not block; closed in close()
        self._errors = tempfile.TemporaryFile()  # noqa: SIM115
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "detector.outputs.window_process", title, str(wait_ms)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._errors,
                env={**os.environ, "PYTHONPATH": _package_parent()},
            )
        except OSError as exc:
            raise SinkError(f"cannot start the window process: {exc}") from exc
        self._sender = threading.Thread(target=self._send, name="window-send", daemon=True)
        self._reader = threading.Thread(target=self._read, name="window-read", daemon=True)
        self._sender.start()
        self._reader.start()

    def write(self, result: FrameResult | None, annotated: np.ndarray) -> None:
        """Hand one frame to the window (the newest replaces one not yet sent)."""
        if self.closed:
            raise SinkError("WindowSink is closed")
        if self.failed:
            return
        with self._ready:
            if self._newest is not None:
                self.frames_skipped += 1
            self._newest = np.ascontiguousarray(annotated)
            self._ready.notify()

    def _send(self) -> None:
        pipe = self._child.stdin
        assert pipe is not None
        while True:
            with self._ready:
                while self._newest is None and not self.closed and not self.failed:
                    self._ready.wait()
                frame, self._newest = self._newest, None
            if frame is None:
                return
            h, w = frame.shape[:2]
            try:
                pipe.write(FRAME_HEADER.pack(h, w) + frame.tobytes())
                pipe.flush()
            except (OSError, ValueError):  # the window process is gone
                return
            self.frames_shown += 1

    def _read(self) -> None:
        out = self._child.stdout
        assert out is not None
        for line in out:
            event = line.decode("utf-8", "replace").strip()
            if event in ("key", "closed"):
                log.info("window: %s", "quit key pressed" if event == "key" else "closed")
                self.quit_requested = True
        code = self._child.wait()
        if not self.closed and not self.quit_requested:
            self.failed = True
            self._errors.seek(0)
            err = self._errors.read().decode("utf-8", "replace").strip().splitlines()
            why = err[-1:] or [f"exit {code}"]
            log.warning("window failed (%s): going on disk-only", why[0][:200])
            with self._ready:
                self._ready.notify()

    def close(self) -> None:
        """Close the window and its process (idempotent)."""
        if self.closed:
            return
        with self._ready:
            self.closed = True
            self._ready.notify()
        self._sender.join(timeout=5)
        try:
            if self._child.stdin:
                self._child.stdin.close()
        except OSError:
            pass
        try:
            self._child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._child.kill()
            self._child.wait()
        self._reader.join(timeout=5)
        self._errors.close()

    def __enter__(self) -> WindowSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _package_parent() -> str:
    """The folder holding the ``detector`` package, for the child's import path."""
    parent = str(Path(__file__).resolve().parents[2])
    rest = os.environ.get("PYTHONPATH")
    return parent + (os.pathsep + rest if rest else "")
