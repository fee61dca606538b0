"""The local vs Ray bench section's arithmetic and report lines (no Ray runs here)."""

from __future__ import annotations

import math
from pathlib import Path

from detector.benchmarks import ray_engine


def test_the_two_sizes_give_fixed_cost_per_image_cost_and_break_even(
    tmp_path: Path, monkeypatch
) -> None:
    walls = {("local", 50): 6.0, ("local", 200): 12.0, ("ray", 50): 20.0, ("ray", 200): 23.0}

    def fake_run(folder: Path, engine: str, out_dir: Path, name: str, extra=()) -> dict:
        n = len(list(folder.iterdir()))
        res = {"wall_s": walls[(engine, n)], "images": n}
        if engine == "ray":
            res.update(per_actor_images_per_s=25.0, steady_ms_per_image=20.0, first_result_s=9.0)
        return res

    monkeypatch.setattr(ray_engine, "timed_run", fake_run)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    res = ray_engine.ray_vs_local(photos, (50, 200), tmp_path / "cache", tmp_path / "runs")
    assert math.isclose(res["local"]["per_image_ms"], 40.0)  # (12 - 6) s / 150 images
    assert math.isclose(res["local"]["fixed_s"], 4.0)
    assert math.isclose(res["ray"]["per_image_ms"], 20.0)
    assert math.isclose(res["ray"]["fixed_s"], 19.0)
    assert math.isclose(res["break_even_images"], 750.0)  # 15 s extra / 20 ms saved per image
    text = "\n".join(ray_engine.format_lines(res))
    assert "fixed 4.0 s + 40.0 ms per image" in text and "about 750 images" in text
    assert "25.0 images per busy second" in text


def test_noise_or_a_slower_ray_is_said_not_hidden(tmp_path: Path, monkeypatch) -> None:
    walls = {("local", 50): 6.0, ("local", 200): 12.0, ("ray", 50): 30.0, ("ray", 200): 25.0}
    monkeypatch.setattr(
        ray_engine,
        "timed_run",
        lambda folder, engine, *a, **k: {
            "wall_s": walls[(engine, len(list(folder.iterdir())))],
            "images": len(list(folder.iterdir())),
        },
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    res = ray_engine.ray_vs_local(photos, (50, 200), tmp_path / "cache", tmp_path / "runs")
    assert "error" in res["ray"] and "break_even_images" not in res
    assert "noise" in "\n".join(ray_engine.format_lines(res))
