"""The detection API of a real service: DeepStack's client unmodified, curl as the README shows,
/api/detect with its options, bad input and tokens."""

from __future__ import annotations

import json
import struct
import subprocess
import zlib
from concurrent.futures import ThreadPoolExecutor

import cv2
import httpx
import numpy as np
import pytest
from deepstack.core import DeepstackException, DeepstackObject
from helpers.service_clients import metric

from detector.outputs.web import Access, Hub, WebServer
from detector.service.detect import detect_router

pytestmark = [pytest.mark.e2e, pytest.mark.tf]

DOG = {"dog", "bicycle", "car"}


def test_deepstack_client_gets_the_objects_of_the_sample_photos(service, photos_dir):
    client = DeepstackObject("127.0.0.1", service.port, timeout=60, min_confidence=0.5)
    predictions = client.detect((photos_dir / "dog.jpg").read_bytes())
    assert {p["label"] for p in predictions} == DOG
    for p in predictions:
        assert 0.5 <= p["confidence"] <= 1
        assert 0 <= p["x_min"] < p["x_max"] <= 768 and 0 <= p["y_min"] < p["y_max"] <= 576
        assert all(isinstance(p[k], int) for k in ("x_min", "y_min", "x_max", "y_max"))
    dog = next(p for p in predictions if p["label"] == "dog")
    assert dog["x_min"] < 300 and dog["y_min"] > 150  # the dog sits at the bottom left
    people = client.detect((photos_dir / "person.jpg").read_bytes())
    assert "person" in {p["label"] for p in people}


def test_curl_as_the_readme_shows(service, photos_dir):
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-F",
            f"image=@{photos_dir / 'dog.jpg'}",
            f"{service.url}v1/vision/detection",
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    answer = json.loads(out.stdout)
    assert answer["success"] is True
    assert {p["label"] for p in answer["predictions"]} >= DOG
    # --data-binary labels the bytes application/x-www-form-urlencoded: still the image
    raw = subprocess.run(
        ["curl", "-sS", "--data-binary", f"@{photos_dir / 'dog.jpg'}",
         f"{service.url}api/detect?threshold=0.6"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert {d["label"] for d in json.loads(raw.stdout)["detections"]} >= {"dog"}


def test_api_detect_raw_bytes_threshold_classes_and_annotated(service, photos_dir):
    data = (photos_dir / "dog.jpg").read_bytes()
    url = f"{service.url}api/detect"
    with httpx.Client(timeout=60) as http:
        got = http.post(url, content=data).json()
        assert (got["width"], got["height"]) == (768, 576)
        assert {d["label"] for d in got["detections"]} == DOG
        assert all(len(d["box_xyxy"]) == 4 and d["class_id"] >= 1 for d in got["detections"])
        only = http.post(url, params={"classes": "dog,car"}, files={"image": data}).json()
        assert {d["label"] for d in only["detections"]} == {"dog", "car"}
        low = http.post(url, params={"threshold": 0.05}, content=data).json()
        assert len(low["detections"]) > len(got["detections"])
        drawn = http.post(url, params={"annotated": 1}, content=data)
        assert drawn.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(drawn.content, np.uint8), cv2.IMREAD_COLOR)
        plain = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == plain.shape
        assert np.abs(image.astype(int) - plain).mean() > 1.0  # the boxes are drawn


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)  # the start of the first rows
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("body", "kwargs", "status", "says"),
    [
        (b"", {}, 400, "empty"),
        (b"this is not an image", {}, 415, "not an image"),
        (_png_header(8000, 8000), {}, 413, "64.0 megapixels"),
        (_png_header(20000, 20000), {}, 413, "megapixels"),
        (None, {"files": {"picture": b"x"}}, 400, "image"),
        (b"x", {"params": {"threshold": 3}}, 422, "threshold"),
        (b"x", {"params": {"classes": "unicorn"}}, 400, "unicorn"),
    ],
)
def test_bad_input_gets_a_json_4xx(service, body, kwargs, status, says):
    with httpx.Client(timeout=30) as http:
        if body is not None:
            kwargs = {"content": body, **kwargs}
        answer = http.post(f"{service.url}api/detect", **kwargs)
    assert answer.status_code == status, answer.text
    assert says in answer.json()["error"]


def test_deepstack_errors_are_deepstack_shaped(service):
    with httpx.Client(timeout=30) as http:
        answer = http.post(f"{service.url}v1/vision/detection", files={"image": b"GIF89a broken"})
    assert answer.status_code == 415
    assert answer.json()["success"] is False and "not an image" in answer.json()["error"]


def test_oversized_body_is_refused(service):
    big = b"\xff" * (21 * 1024 * 1024)
    with httpx.Client(timeout=60) as http:
        answer = http.post(f"{service.url}api/detect", content=big)
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]


def test_concurrent_requests_share_model_calls(service, photos_dir):
    photos = [p.read_bytes() for p in sorted(photos_dir.glob("*.jpg"))]
    before = metric(service.server.metrics.text().decode(), "detector_batch_images_count") or 0

    def one(i: int) -> int:
        with httpx.Client(timeout=60) as http:
            return http.post(
                f"{service.url}api/detect", content=photos[i % len(photos)]
            ).status_code

    with ThreadPoolExecutor(16) as pool:
        assert set(pool.map(one, range(48))) == {200}
    text = service.server.metrics.text().decode()
    calls = (metric(text, "detector_batch_images_count") or 0) - before
    assert 0 < calls < 48  # 48 images went through fewer model calls
    assert metric(text, "detector_requests_total", route="detect", status="200") >= 48


def test_token_is_required_and_checked(service, photos_dir):
    hub = Hub()
    data = (photos_dir / "dog.jpg").read_bytes()
    with WebServer(
        hub, port=0, access=Access(token="s3cret"), routers=[detect_router(service.api)]
    ) as guarded:
        with httpx.Client(timeout=60) as http:
            assert http.get(f"{guarded.url}healthz").status_code == 200  # never needs it
            assert http.get(f"{guarded.url}api/status").status_code == 401
            assert (
                http.get(f"{guarded.url}readyz", headers={"X-API-Key": "nope"}).status_code == 403
            )
            assert http.post(f"{guarded.url}api/detect", content=data).status_code == 401
            ok = http.post(
                f"{guarded.url}api/detect",
                content=data,
                headers={"Authorization": "Bearer s3cret"},
            )
            assert ok.status_code == 200
            page = http.get(f"{guarded.url}?token=s3cret")  # a browser: the cookie follows
            assert page.status_code == 200 and "detector_token" in page.headers["set-cookie"]
            assert http.get(f"{guarded.url}api/status").status_code == 200
        good = DeepstackObject("127.0.0.1", guarded.port, api_key="s3cret", timeout=60)
        assert {p["label"] for p in good.detect(data)} >= DOG
        with pytest.raises(DeepstackException, match="401"):
            DeepstackObject("127.0.0.1", guarded.port, api_key="wrong", timeout=60).detect(data)
