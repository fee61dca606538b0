"""The command line as typed: --version, whole flags only, did-you-mean, help text as printed."""

from __future__ import annotations

import pytest

from detector import __version__
from detector.cli.main import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(argv))
    out = capsys.readouterr()
    return int(stop.value.code or 0), out.out + out.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "--version")
    assert code == 0 and __version__ in text


def test_an_abbreviated_flag_is_refused_with_the_whole_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, text = _run(capsys, "--sourc", "clip.mp4")  # it used to run the default job
    assert code == 2 and "--sourc" in text and "did you mean --source?" in text


def test_a_mistyped_command_gets_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "modle", "inspect", "x.pb")
    assert code == 2 and "unknown command 'modle'" in text and "did you mean 'model'?" in text
    code, text = _run(capsys, "clip.mp4")
    assert code == 2 and "--source clip.mp4" in text


def test_a_mistyped_sub_command_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "model", "inspect", "x.pb", "--al-tensors")
    assert code == 2 and "--al-tensors" in text


def test_percent_signs_print_once(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "model", "quantize", "--help")
    assert code == 0 and "95%" in text and "%%" not in text


def test_logging_flags_before_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, text = _run(capsys, "-q", "model", "--help")  # was "unrecognized arguments: model"
    assert code == 0 and "inspect" in text
