"""The window process: shows the frames it reads on stdin, reports q / Esc / close on stdout.

Run by :class:`detector.outputs.window.WindowSink` as
``python -m detector.outputs.window_process TITLE WAIT_MS``. Each frame arrives as
``FRAME_HEADER`` (height, width) and ``height * width * 3`` BGR bytes; end of input closes
the window. Events written back, one per line: ``key`` (q or Esc) and ``closed`` (the
user closed the window). If the X server dies, Qt ends this process, not the run.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import BinaryIO

import cv2
import numpy as np

from detector.outputs.window import FRAME_HEADER, QUIT_KEYS


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def show(title: str, wait_ms: int, frames: BinaryIO, events: BinaryIO) -> None:
    """Show frames until end of input or a quit; report quits on ``events``."""
    shown = seen_visible = False
    while True:
        head = _read_exact(frames, FRAME_HEADER.size)
        if head is None:
            break
        h, w = FRAME_HEADER.unpack(head)
        data = _read_exact(frames, h * w * 3)
        if data is None:
            break
        image = np.frombuffer(data, np.uint8).reshape(h, w, 3)
        if not shown:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            cv2.resizeWindow(title, w, h)
            shown = True
        cv2.imshow(title, image)
        key = cv2.waitKey(wait_ms)
        event = None
        if key != -1 and (key & 0xFF) in QUIT_KEYS:
            event = b"key\n"
        elif _visible(title):
            seen_visible = True
        elif seen_visible:  # not yet mapped right after the first imshow is no close
            event = b"closed\n"
        if event:
            events.write(event)
            events.flush()
    if shown:
        cv2.destroyWindow(title)
        cv2.waitKey(1)


def _visible(title: str) -> bool:
    try:
        return cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) >= 1
    except cv2.error:
        # The Qt backend raises ("NULL guiReceiver") once the user has closed its window.
        return False


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the run stops the window: end of input
    with contextlib.suppress(BrokenPipeError):
        show(sys.argv[1], max(1, int(sys.argv[2])), sys.stdin.buffer, sys.stdout.buffer)
