"""Several sources in one run, end to end on a tiny TF graph and media made in the test.

A folder of videos (one broken), ``--source`` given twice, and two live MJPEG cameras on
127.0.0.1 served on one page (headless Chromium) and stopped with a real SIGINT.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
import time
from pathlib import Path

import pytest
from helpers.browser import console_errors
from helpers.cli_run import RunningCli, tiny_model_flags
from helpers.mjpeg_server import MjpegServer
from helpers.tiny_models import read_video, tiny_model_files, tiny_video

from detector.cli import main

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    return tiny_model_files(tmp_path_factory.mktemp("assets"), "g.pb")


def flags(assets: dict[str, Path], out: Path, *sources: str | Path) -> list[str]:
    srcs = [a for s in sources for a in ("--source", str(s))]
    return [
        *srcs,
        *tiny_model_flags(assets["model"], assets["labels"], out),
        "--video-format",
        "avi",
    ]


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_folder_of_videos_with_a_broken_file_runs_the_others_and_exits_1(assets, tmp_path, capsys):
    clips = tmp_path / "clips"
    clips.mkdir()
    tiny_video(clips / "a.avi", frames=12, fps=7.0)
    (clips / "b_broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 50)
    tiny_video(clips / "c.avi", frames=9, fps=5.0)
    (clips / "notes.txt").write_text("not a video: ignored")
    out = tmp_path / "runs"

    assert main(flags(assets, out, clips)) == 1
    captured = capsys.readouterr()
    assert re.search(r"1 of 3 sources failed: '[^']*b_broken\.mp4'", captured.err)
    run = out / "clips"
    for name, frames, fps in (("a", 12, 7.0), ("c", 9, 5.0)):
        sub = run / name
        record = json.loads((sub / "run.json").read_text())
        assert record["status"] == "ok"
        assert record["stats"]["frames_processed"] == frames
        (_, got_fps, _, _), video = read_video(sub / "annotated.avi")
        assert len(video) == frames and got_fps == pytest.approx(fps)
        assert [r["frame"] for r in lines(sub / "detections.jsonl")] == list(range(frames))
    broken = json.loads((run / "b_broken" / "run.json").read_text())
    assert broken["status"] == "error" and "b_broken.mp4" in broken["error"]
    top = json.loads((run / "run.json").read_text())
    assert top["status"] == "failed"
    assert [(s["status"], s["run_dir"]) for s in top["sources"]] == [
        ("ok", "a"),
        ("failed", "b_broken"),
        ("ok", "c"),
    ]
    assert top["failed"] == [str(clips / "b_broken.mp4")]
    assert top["stats"]["frames_processed"] == 21
    # One summary for the whole run, naming the failure and its reason.
    assert captured.out.count("run failed: 3 sources (2 ok)") == 1
    assert "failed: " + str(clips / "b_broken.mp4") in captured.out
    # One model load for the three sources.
    assert sum(1 for rec in (run / "a", run / "c") if (rec / "run.json").exists()) == 2
    assert top["model"]["load_s"] >= 0


def test_source_given_twice_gives_a_sub_folder_each(assets, tmp_path, capsys):
    a = tiny_video(tmp_path / "one.avi", frames=6)
    b = tiny_video(tmp_path / "two.avi", frames=4)
    assert (
        main(
            flags(
                assets,
                tmp_path / "runs",
                a,
                b,
            )
        )
        == 0
    )
    run = tmp_path / "runs" / "sources"
    assert json.loads((run / "one" / "run.json").read_text())["stats"]["frames_processed"] == 6
    assert json.loads((run / "two" / "run.json").read_text())["stats"]["frames_processed"] == 4
    assert "run ok: 2 sources (2 ok)" in capsys.readouterr().out


def distinct(page, selector: str, want: int, timeout_s: float = 30) -> int:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) < want and time.monotonic() < deadline:
        seen.add(hashlib.sha1(page.locator(selector).screenshot()).hexdigest())
    return len(seen)


def test_two_live_cameras_on_one_page_and_a_dead_one_reported(assets, tmp_path, page):
    out = tmp_path / "runs"
    with MjpegServer(fps=15, size=(160, 120)) as cam1, MjpegServer(fps=12, size=(200, 150)) as cam2:
        dead = "http://127.0.0.1:9/nothing.mjpg"  # port 9 (discard): connection refused
        run = RunningCli(
            *flags(assets, out, cam1.url, cam2.url, dead), "--serve", "0", "--name", "cams"
        )
        try:
            url = run.wait_for_line(r"web view: (http://127\.0\.0\.1:\d+/)").group(1)
            errors = console_errors(page)
            page.goto(url)
            page.wait_for_selector("section.source[data-key='2']")
            for key in ("0", "1"):
                page.wait_for_function(
                    f"document.querySelector(\"[data-key='{key}'] td[data-field=state]\")"
                    ".textContent === 'running'",
                    timeout=60_000,
                )
                assert distinct(page, f"img[data-key='{key}']", 10) >= 10
            page.wait_for_function(
                "document.querySelector(\"[data-key='2'] td[data-field=state]\")"
                ".textContent === 'ended'",
                timeout=60_000,
            )
            assert page.text_content("[data-key='1'] td[data-field=frame]").endswith("(200×150)")
            assert errors == []
            run.wait_for_line(r"source .*nothing\.mjpg.* failed")
            run.signal(signal.SIGINT)
            result = run.finish(60)
        finally:
            run.kill()
    assert result.code == 130, result.err[-3000:]
    summary = result.out
    assert "run interrupted: 3 sources" in summary and "nothing.mjpg" in summary
    top = json.loads((out / "cams" / "run.json").read_text())
    assert [s["status"] for s in top["sources"]] == ["interrupted", "interrupted", "failed"]
    for entry in top["sources"][:2]:
        sub = out / "cams" / entry["run_dir"]
        record = json.loads((sub / "run.json").read_text())
        assert record["status"] == "interrupted" and record["source"]["live"]
        n = record["stats"]["frames_processed"]
        (_, _, _, _), video = read_video(sub / "annotated.avi")
        assert n > 10 and len(video) == n == len(lines(sub / "detections.jsonl"))


def test_serve_on_a_port_in_use_exits_1_naming_the_port(assets, tmp_path, capsys):
    import socket

    clip = tiny_video(tmp_path / "c.avi", frames=3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main([*flags(assets, tmp_path / "runs", clip), "--serve", str(port)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"port {port} is already in use" in err and "hint:" in err and "--serve" in err
    assert not (tmp_path / "runs").exists()  # failed before any run folder was made


def test_bad_serve_value_is_a_usage_error(assets, tmp_path, capsys):
    clip = tiny_video(tmp_path / "c.avi", frames=3)
    assert main([*flags(assets, tmp_path / "runs", clip), "--serve", "localhost:http"]) == 2
    assert "output.serve" in capsys.readouterr().err
