"""Config: schema, did-you-mean, type/range errors naming file and key, paths, overrides."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from detector.config import KEYS, Config, load_config
from detector.errors import ConfigError
from detector.paths import CONFIGS_DIR, DEFAULT_CONFIG, PROJECT_ROOT


def write(tmp_path: Path, text: str, name: str = "c.yml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def error_of(path, overrides=None) -> str:
    with pytest.raises(ConfigError) as err:
        load_config(path, overrides or {})
    assert err.value.exit_code == 2
    return str(err.value)


@pytest.mark.parametrize(
    "path", [DEFAULT_CONFIG, *sorted(CONFIGS_DIR.glob("*.yml"))], ids=lambda p: p.name
)
def test_every_shipped_config_loads(path):
    cfg = load_config(path)
    assert isinstance(cfg, Config)
    json.dumps(cfg.to_dict())  # run.json-ready


def test_shipped_configs_exist():
    names = {p.name for p in CONFIGS_DIR.glob("*.yml")}
    assert {"webcam.yml", "video.yml", "images.yml"} <= names
    assert DEFAULT_CONFIG.is_file()  # package data: detector/default.yml


def test_none_loads_project_default_with_documented_values():
    cfg = load_config(None)
    assert cfg.path == DEFAULT_CONFIG
    assert cfg.source.uri == str(PROJECT_ROOT / "samples" / "vtest.avi")
    assert cfg.model.path == PROJECT_ROOT / "models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb"
    assert cfg.model.labels == PROJECT_ROOT / "models/ssd_mobilenet_v2_coco/label_map.pbtxt"
    assert cfg.output.dir == PROJECT_ROOT / "runs"
    assert cfg.detect.threshold == 0.5
    assert (cfg.output.video, cfg.output.jsonl, cfg.output.show) == (True, True, False)


def test_code_defaults_equal_default_yml(tmp_path):
    # An empty config takes the code defaults; they must be what default.yml documents.
    assert load_config(write(tmp_path, "")).to_dict() == load_config(None).to_dict()


def test_default_yml_comments_every_key():
    lines = DEFAULT_CONFIG.read_text().splitlines()
    section = None
    seen = set()
    for i, line in enumerate(lines):
        if m := re.match(r"^(\w+):\s*$", line):
            section = m.group(1)
        elif m := re.match(r"^  (\w+):", line):
            seen.add(f"{section}.{m.group(1)}")
            # a comment right above, or above a run of keys sharing one comment
            j = i - 1
            while re.match(r"^  \w+:", lines[j]):
                j -= 1
            assert lines[j].strip().startswith("#"), f"{section}.{m.group(1)} has no comment"
    assert seen == set(KEYS)


def test_webcam_and_images_configs():
    cam = load_config(CONFIGS_DIR / "webcam.yml")
    assert cam.source.uri == "0" and cam.output.show and not cam.output.video
    imgs = load_config(CONFIGS_DIR / "images.yml")
    assert imgs.source.uri == str(PROJECT_ROOT / "samples" / "photos")
    assert imgs.output.images and not imgs.output.video


def test_unknown_key_did_you_mean_names_file(tmp_path):
    p = write(tmp_path, "detect:\n  treshold: 0.3\n")
    msg = error_of(p)
    assert str(p) in msg and "detect.treshold" in msg and "did you mean 'detect.threshold'" in msg


def test_unknown_section_and_key_in_wrong_section(tmp_path):
    msg = error_of(write(tmp_path, "detekt:\n  threshold: 0.3\n"))
    assert "unknown section 'detekt'" in msg and "did you mean 'detect'" in msg
    msg = error_of(write(tmp_path, "output:\n  threshold: 0.3\n"))
    assert "output.threshold" in msg and "'detect.threshold'" in msg


@pytest.mark.parametrize(
    "text, key, expected",
    [
        ("detect:\n  threshold: 1.5\n", "detect.threshold", "[0.0, 1.0]"),
        ("detect:\n  threshold: high\n", "detect.threshold", "a number"),
        ("detect:\n  detect_every: 0\n", "detect.detect_every", ">= 1"),
        ("detect:\n  detect_every: 2.5\n", "detect.detect_every", "an integer"),
        ("detect:\n  max_boxes: true\n", "detect.max_boxes", "an integer"),
        ("detect:\n  classes: person\n", "detect.classes", "a list"),
        ("model:\n  workers: 0\n", "model.workers", ">= 1"),
        ("model:\n  device: tpu\n", "model.device", "auto or cpu or gpu"),
        ("model:\n  allow_memory_growth: 'yes'\n", "model.allow_memory_growth", "true or false"),
        ("model:\n  path: null\n", "model.path", "cannot be null"),
        ("output:\n  video_format: mkv\n", "output.video_format", "mp4 or avi"),
        ("output:\n  name: a/b\n", "output.name", "without '/'"),
        ("run:\n  fps_interval_s: 0\n", "run.fps_interval_s", "> 0"),
        ("source:\n  width: -5\n", "source.width", ">= 1"),
    ],
)
def test_type_and_range_errors_name_file_and_key(tmp_path, text, key, expected):
    p = write(tmp_path, text)
    msg = error_of(p)
    assert str(p) in msg and key in msg and expected in msg


def test_bad_yaml_and_bad_shapes(tmp_path):
    msg = error_of(write(tmp_path, "detect:\n  threshold: [0.5\n"))
    assert "invalid YAML" in msg and "line" in msg
    assert "expected a mapping" in error_of(write(tmp_path, "- a\n- b\n"))
    assert "detect: expected a mapping" in error_of(write(tmp_path, "detect: 3\n"))
    assert "does not exist" in error_of(tmp_path / "missing.yml")


def test_relative_paths_resolve_against_config_folder(tmp_path):
    sub = tmp_path / "cfg"
    sub.mkdir()
    p = write(
        sub,
        "source:\n  uri: clips/a.mp4\nmodel:\n  path: ../m/g.pb\n  labels: l.txt\n"
        "output:\n  dir: out\n",
    )
    cfg = load_config(p)
    assert cfg.source.uri == str(sub / "clips" / "a.mp4")
    assert cfg.model.path == tmp_path / "m" / "g.pb"
    assert cfg.model.labels == sub / "l.txt"
    assert cfg.output.dir == sub / "out"


def test_cameras_urls_absolute_and_globs(tmp_path):
    assert load_config(write(tmp_path, "source:\n  uri: 1\n")).source.uri == "1"
    url = "rtsp://cam.local:554/live"
    assert load_config(write(tmp_path, f"source:\n  uri: {url}\n")).source.uri == url
    assert load_config(write(tmp_path, "source:\n  uri: /data/x.avi\n")).source.uri == "/data/x.avi"
    glob_cfg = load_config(write(tmp_path, "source:\n  uri: 'photos/*.jpg'\n"))
    assert glob_cfg.source.uri == str(tmp_path / "photos" / "*.jpg")


def test_keys_left_out_keep_defaults_relative_to_project(tmp_path):
    cfg = load_config(write(tmp_path, "detect:\n  threshold: 0.3\n"))
    assert cfg.detect.threshold == 0.3
    assert cfg.model.path == PROJECT_ROOT / "models/ssd_mobilenet_v2_coco/frozen_inference_graph.pb"


def test_overrides_typed_and_strings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(
        None,
        {
            "detect.threshold": "0.4",
            "detect.detect_every": 3,
            "output.show": "true",
            "source.uri": "clips/b.mp4",
            "model.labels": "null",
            "detect.classes": "person, 3",
            "run.max_frames": "50",
            "output.dir": "out",
            "model.workers": None,
        },
    )
    assert cfg.detect.threshold == 0.4 and cfg.detect.detect_every == 3
    assert cfg.output.show is True and cfg.run.max_frames == 50
    assert cfg.source.uri == str(tmp_path / "clips" / "b.mp4")  # against the CWD
    assert cfg.output.dir == tmp_path / "out"
    assert cfg.model.labels is None
    assert cfg.detect.classes == ("person", "3")
    assert cfg.model.workers == 2  # None = flag not given
    assert load_config(None, {"source.uri": 0}).source.uri == "0"


def test_override_errors(tmp_path):
    msg = error_of(None, {"detect.treshold": 0.2})
    assert "override" in msg and "did you mean 'detect.threshold'" in msg
    msg = error_of(None, {"detect.threshold": "2"})
    assert "override" in msg and "detect.threshold" in msg
    assert "detect.detect_every" in error_of(None, {"detect.detect_every": "often"})


def test_config_is_frozen_and_to_dict_plain():
    cfg = load_config(None)
    with pytest.raises(AttributeError):
        cfg.detect.threshold = 0.1  # type: ignore[misc]
    d = cfg.to_dict()
    assert set(d) == {
        *("source", "model", "detect", "output", "run", "serve", "events", "zones", "lines")
    }
    assert d["detect"]["classes"] == [] and isinstance(d["model"]["path"], str)


def test_keys_of_the_original_app_still_load_with_a_warning(tmp_path, caplog):
    p = tmp_path / "old.yml"
    p.write_text("detect:\n  det_interval: 10\n  det_th: 0.7\nrun:\n  fps_interval: 2.0\n")
    with caplog.at_level("WARNING", logger="detector.config"):
        cfg = load_config(p)
    assert (cfg.detect.report_every, cfg.detect.report_threshold) == (10, 0.7)
    assert cfg.run.fps_interval_s == 2.0
    assert "'detect.det_interval' is deprecated, use 'detect.report_every'" in caplog.text
    assert "'run.fps_interval' is deprecated, use 'run.fps_interval_s'" in caplog.text
    both = tmp_path / "both.yml"
    both.write_text("detect:\n  det_th: 0.7\n  report_threshold: 0.6\n")
    with pytest.raises(ConfigError, match=r"both 'detect\.det_th' and 'detect\.report_threshold'"):
        load_config(both)


def test_a_report_threshold_below_the_detection_threshold_is_explained(tmp_path, caplog):
    p = tmp_path / "c.yml"
    p.write_text("detect:\n  threshold: 0.6\n  report_threshold: 0.3\n")
    with caplog.at_level("WARNING", logger="detector.config"):
        load_config(p)
    assert "report_threshold 0.3 is below detect.threshold 0.6" in caplog.text
