"""The ``run`` and ``serve`` flags come from the config's fields: same names, same keys."""

from __future__ import annotations

import pytest

from detector.cli.main import build_parser
from detector.cli.run import overrides_from_args
from detector.config import choices, flagged_keys, key_field, load_config

#: Each value flag of the command line and the key it sets (the documented contract).
VALUE_FLAGS = {
    "--source": "source.uri",
    "--model": "model.path",
    "--labels": "model.labels",
    "--threshold": "detect.threshold",
    "--classes": "detect.classes",
    "--detect-every": "detect.detect_every",
    "--workers": "model.workers",
    "--max-frames": "run.max_frames",
    "--output": "output.dir",
    "--name": "output.name",
    "--serve": "output.serve",
    "--token-file": "serve.token_file",
    "--ray-address": "run.ray_address",
    "--ray-actors": "run.ray_actors",
    "--ray-batch-size": "run.ray_batch_size",
    "--ray-cpus-per-actor": "run.ray_cpus_per_actor",
    "--ray-gpus-per-actor": "run.ray_gpus_per_actor",
    "--ray-cpus-per-source": "run.ray_cpus_per_source",
    "--ray-max-restarts": "run.ray_max_restarts",
    "--ray-placement": "run.ray_placement",
    "--zone": "zones",
    "--line": "lines",
    "--thresholds": "detect.thresholds",
    "--min-area": "detect.min_area",
    "--max-area": "detect.max_area",
    "--mqtt": "events.mqtt",
    "--webhook": "events.webhook",
}
ENUM_FLAGS = {
    "--device": "model.device",
    "--backend": "model.backend",
    "--precision": "model.precision",
    "--track": "detect.track",
    "--engine": "run.engine",
    "--ray-outputs": "run.ray_outputs",
    "--video-format": "output.video_format",
    "--video-codec": "output.video_codec",
    "--progress": "output.progress",
}
SWITCHES = {
    "--show": "output.show",
    "--video": "output.video",
    "--images": "output.images",
    "--jsonl": "output.jsonl",
    "--coco": "output.coco",
    "--csv": "output.csv",
    "--mot": "output.mot",
    "--mot-all": "output.mot_all",
    "--hud": "output.hud",
    "--insecure": "serve.insecure",
    "--allow-unsafe-ops": "model.allow_unsafe_ops",
    "--init-missing": "model.init_missing",
    "--snapshots": "events.snapshots",
    "--clips": "events.clips",
}


def _overrides(*argv: str) -> dict[str, object]:
    return overrides_from_args(build_parser().parse_args(["run", *argv]))


@pytest.mark.parametrize(("flag", "key"), VALUE_FLAGS.items())
def test_a_value_flag_sets_its_key(flag: str, key: str) -> None:
    repeatable = key in ("source.uri", "zones", "lines")  # may be given several times
    expected = ["3"] if repeatable else "3"
    assert _overrides(flag, "3") == {key: expected}


@pytest.mark.parametrize(("flag", "key"), ENUM_FLAGS.items())
def test_an_enum_flag_offers_exactly_the_config_choices(
    flag: str, key: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in choices(key):
        assert _overrides(flag, value) == {key: value}
    with pytest.raises(SystemExit) as exc:
        _overrides(flag, "nonsense")
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "key"), SWITCHES.items())
def test_a_switch_sets_true_and_its_no_form_false(flag: str, key: str) -> None:
    assert _overrides(flag) == {key: "true"}
    assert _overrides(f"--no-{flag[2:]}") == {key: "false"}


def test_no_flag_given_overrides_nothing_and_bare_track_means_bytetrack() -> None:
    assert _overrides() == {}
    assert _overrides("--track") == {"detect.track": "bytetrack"}
    assert _overrides("--source", "a.mp4", "--source", "0") == {"source.uri": ["a.mp4", "0"]}


def test_every_flagged_key_is_covered_here_and_loads() -> None:
    documented = {**VALUE_FLAGS, **ENUM_FLAGS, **SWITCHES}
    assert {k.key for k in flagged_keys()} == set(documented.values())
    config = load_config(None, _overrides("--threshold", "0.3", "--no-video", "--track", "sort"))
    assert config.detect.threshold == 0.3 and not config.output.video
    assert config.detect.track == "sort"
    assert key_field("detect.threshold").metadata["flag"].help


def test_serve_takes_the_same_flags_from_the_same_fields() -> None:
    args = build_parser().parse_args(
        ["serve", "--backend", "openvino", "--insecure", "--threshold", "0.3", "--port", "0"]
    )
    assert overrides_from_args(args) == {
        "model.backend": "openvino",
        "detect.threshold": "0.3",
        "serve.insecure": "true",
    }
    assert args.port == 0 and args.source == []
