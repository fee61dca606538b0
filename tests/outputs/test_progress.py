"""Progress: a tqdm bar on a terminal with log records routed above it; a log line elsewhere."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from detector.outputs.progress import ProgressSink, choose_mode


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def info_logging():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    yield root
    root.setLevel(level)


def test_mode_follows_the_terminal_and_quiet(info_logging: logging.Logger) -> None:
    assert choose_mode("auto", _Tty()) == "bar"
    assert choose_mode("auto", io.StringIO()) == "log"  # a pipe or file: CI logs
    info_logging.setLevel(logging.WARNING)  # -q
    assert choose_mode("auto", _Tty()) == "log"
    assert choose_mode("bar", io.StringIO()) == "bar" and choose_mode("off") == "off"
    with pytest.raises(ValueError, match="progress mode 'fancy'"):
        ProgressSink(10, "x", "fancy")


def test_log_lines_every_interval_with_done_total_rate_and_eta(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    sink = ProgressSink(100, "clip.mp4", "log", interval_s=5.0, clock=clock)
    with caplog.at_level(logging.INFO, logger="detector.outputs.progress"):
        for _ in range(40):
            clock.t += 0.25  # 4 frames/s
            sink.write(None)
        sink.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "progress: 20/100 frames (20%), 4.0 frames/s, ETA 0:00:20",
        "progress: 40/100 frames (40%), 4.0 frames/s, ETA 0:00:15",
        "progress: 40/100 frames (40%), 4.0 frames/s, ETA 0:00:15",  # the last, at close
    ]
    assert sink.describe() == {"mode": "log", "frames": 40, "total": 100}


def test_unknown_length_counts(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    sink = ProgressSink(None, "cam", "log", clock=clock)
    clock.t = 2.0
    sink.write(None)
    assert sink.line() == "1 frames, 0.5 frames/s"


def test_bar_shows_progress_and_log_records_print_above_it(
    monkeypatch: pytest.MonkeyPatch, info_logging: logging.Logger
) -> None:
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    handler = logging.StreamHandler(sys.stderr)
    info_logging.addHandler(handler)
    try:
        sink = ProgressSink(50, "clip.mp4", "auto")
        assert sink.mode == "bar"
        for i in range(50):
            sink.write(None)
            if i == 24:
                logging.getLogger("detector.test").info("halfway there")
        sink.close()
        assert handler in info_logging.handlers  # the redirect is undone at close
    finally:
        info_logging.removeHandler(handler)
    text = err.getvalue()
    assert "clip.mp4" in text and "50/50" in text and "frame/s" in text
    # The record went through tqdm.write: on a line of its own, not glued into a bar line.
    assert "\nhalfway there\n" in text.replace("\r", "\n")
