"""An on-screen window for annotated frames, opened only after probing that a display answers.

Why probe: ``cv2.imshow`` from the ``opencv-python`` (Qt) wheel aborts the whole process
(exit 134, no exception) when no X display answers — also when ``DISPLAY`` names a display
with no server. ``XOpenDisplay`` through ctypes asks the X server directly, in milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import time
from functools import lru_cache

import cv2
import numpy as np

from detector.errors import SinkError
from detector.types import FrameResult

log = logging.getLogger(__name__)

QUIT_KEYS = frozenset({ord("q"), ord("Q"), 27})  # 27 = Esc
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
    """Shows annotated frames in a window; q, Esc or closing the window asks to quit.

    Args:
        title: Window title.
        wait_ms: Milliseconds ``cv2.waitKey`` waits per frame (≥ 1: the window only
            repaints and reads keys while waiting).

    Attributes:
        quit_requested: True once the user pressed q or Esc or closed the window; the
            caller stops the run (``consume`` returns False).

    Raises:
        SinkError: No display can be opened (checked before any OpenCV GUI call).
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
        self.wait_ms = max(1, int(wait_ms))
        self.quit_requested = False
        self.closed = False
        self.failed = False  # the GUI broke mid-run: the run goes on disk-only
        self._shown = False
        self._seen_visible = False

    def write(self, result: FrameResult | None, annotated: np.ndarray) -> None:
        """Show one frame and poll the keyboard and the window's state."""
        if self.closed:
            raise SinkError("WindowSink is closed")
        if self.failed:
            return
        try:
            if not self._shown:
                cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
                cv2.resizeWindow(self.title, annotated.shape[1], annotated.shape[0])
            cv2.imshow(self.title, annotated)
            self._shown = True
            key = cv2.waitKey(self.wait_ms)
        except cv2.error as exc:
            self.failed = True
            log.warning("window failed (%s): going on disk-only", str(exc).strip()[:200])
            return
        if key != -1 and (key & 0xFF) in QUIT_KEYS:
            log.info("window: quit key pressed")
            self.quit_requested = True
        elif self._visible():
            self._seen_visible = True
        elif self._seen_visible:  # not yet mapped right after the first imshow is no close
            log.info("window closed")
            self.quit_requested = True

    def _visible(self) -> bool:
        try:
            return cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        except cv2.error:
            # The Qt backend raises ("NULL guiReceiver") once the user has closed its window.
            return False

    def close(self) -> None:
        """Destroy the window (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._shown:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)  # let the GUI loop process the destroy
            except cv2.error:
                pass

    def __enter__(self) -> WindowSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
