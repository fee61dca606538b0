"""The run record: masked on every write, written at the start and at the end, one printer."""

from __future__ import annotations

import io
import json
from pathlib import Path

from detector.errors import SourceError
from detector.outputs.record import (
    RESERVE_BYTES,
    RUN_JSON,
    SOURCE_KEYS,
    RunRecord,
    header,
    masked,
    source_entry,
)
from detector.outputs.summary import print_summary

URL = "rtsp://admin:hunter2@cam.local/live"


def _header(argv: list[str]) -> dict:
    return header(
        engine="ray",
        config={"source": {"uri": [URL, "clip.mp4"]}, "model": {"path": "/m.pb"}},
        config_file=None,
        labels_path=None,
        label_count=0,
        class_ids=None,
        argv=argv,
    )


def test_masked_reaches_every_string_in_nested_data() -> None:
    data = {"a": [URL, {"b": (URL, 3, None)}], "p": Path("/x"), "n": 1.5}
    assert masked(data) == {
        "a": [
            "rtsp://admin:***@cam.local/live",
            {"b": ["rtsp://admin:***@cam.local/live", 3, None]},
        ],
        "p": "/x",
        "n": 1.5,
    }


def test_every_write_is_masked_and_the_first_is_padded(tmp_path: Path) -> None:
    record = RunRecord(tmp_path, _header(["--source", URL]))
    record.update(source={"uri": URL})
    record.start()
    first = (tmp_path / RUN_JSON).read_bytes()
    assert b"hunter2" not in first and first.endswith(b" " * RESERVE_BYTES)
    assert json.loads(first)["status"] == "running"
    record.fail(SourceError(f"cannot open {URL}"))
    assert record.finish() is None
    text = (tmp_path / RUN_JSON).read_text()
    assert "hunter2" not in text
    final = json.loads(text)
    assert final["status"] == "error" and final["argv"] == [
        "--source",
        "rtsp://admin:***@cam.local/live",
    ]
    assert final["run_dir"] == str(tmp_path) and "finished" in final


def test_a_child_record_copies_the_header_only(tmp_path: Path) -> None:
    top = RunRecord(tmp_path, _header([]))
    top.update(model={"path": "/m.pb"}, versions={}, ray={"actors": 2}, sources=[])
    sub = top.child(tmp_path / "a")
    assert set(sub.data) == {
        "status", "started", "engine", "argv", "config_file", "config", "labels",
        "class_filter", "model", "versions", "run_dir",
    }  # fmt: skip


def test_a_source_entry_has_the_same_keys_whatever_happened(tmp_path: Path) -> None:
    sub = RunRecord(tmp_path / "a", {"stats": {"frames_processed": 4, "fps": 2.345}})
    ok = source_entry("a.mp4", "ok", None, sub, tmp_path)
    never = source_entry("b.mp4", "skipped", None, None, tmp_path)
    assert tuple(ok) == tuple(never) == SOURCE_KEYS
    assert (ok["run_dir"], ok["frames"], ok["fps"]) == ("a", 4, 2.35)


def test_the_summary_is_printed_masked(tmp_path: Path) -> None:
    record = RunRecord(tmp_path, _header([]))
    record.update(status="error", source={"uri": URL}, error=f"lost {URL}", outputs={})
    out = io.StringIO()
    print_summary(out, record.data)
    assert "hunter2" not in out.getvalue()
    assert "run error: rtsp://admin:***@cam.local/live" in out.getvalue()
