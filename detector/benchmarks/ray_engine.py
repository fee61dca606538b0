"""Local engine vs Ray engine on an image folder: fixed cost, cost per image, break-even.

Each run is the user's command, ``python main.py run --source FOLDER --no-video`` with
``--engine local`` or ``--engine ray``, in a process of its own and timed from outside, so the
fixed cost holds everything a user waits for (Python and TensorFlow imports, the model load;
for Ray also its start, the actors' own imports and model loads, and the shutdown). Two folder
sizes per engine give a straight line ``wall = fixed + n × per_image``; where the lines cross
is the break-even. The Ray run's ``run.json`` gives each actor's images per busy second: the
figure that scales with machines (docs/PERFORMANCE.md projects it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from detector.paths import PROJECT_ROOT


def make_folder(photos: Path, count: int, cache_dir: Path) -> Path:
    """A folder of ``count`` images: the sample photos over and over (cached)."""
    folder = cache_dir / f"ray_images_{count}"
    sources = sorted(p for p in photos.iterdir() if p.is_file())
    if not sources:
        raise FileNotFoundError(f"no photos in {photos}")
    if folder.is_dir() and len(list(folder.iterdir())) == count:
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i in range(count):
        src = sources[i % len(sources)]
        shutil.copyfile(src, folder / f"img_{i:05d}{src.suffix.lower()}")
    return folder


def timed_run(
    folder: Path, engine: str, out_dir: Path, name: str, extra: tuple[str, ...] = ()
) -> dict[str, Any]:
    """One ``main.py run`` in its own process: wall seconds, and what its ``run.json`` says."""
    cmd = [sys.executable, "main.py", "run", "-q", "--source", str(folder), "--no-video"]
    cmd += ["--engine", engine, "--output", str(out_dir), "--name", name, *extra]
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        return {"error": tail or f"exit {done.returncode}", "wall_s": wall}
    record = json.loads((out_dir / name / "run.json").read_text(encoding="utf-8"))
    out: dict[str, Any] = {
        "wall_s": wall,
        "images": record["stats"]["frames_processed"],
    }
    ray = record.get("ray")
    if ray:
        rates = [a["items_per_busy_s"] for a in ray["per_actor"] if a["items_per_busy_s"]]
        after_first_s = ray["elapsed_s"] - ray["ray_start_s"] - (ray["first_result_s"] or 0.0)
        out.update(
            steady_ms_per_image=1e3 * after_first_s / max(1, out["images"]),
            actors=ray["actors"],
            actors_seen=ray["actors_seen"],
            ray_start_s=ray["ray_start_s"],
            first_result_s=ray["first_result_s"],
            per_actor_images_per_s=sum(rates) / len(rates) if rates else None,
        )
    return out


def _line(small: dict[str, Any], big: dict[str, Any]) -> tuple[float, float] | None:
    """``(fixed_s, per_image_ms)`` through two runs, or None when one failed."""
    if "error" in small or "error" in big or big["images"] <= small["images"]:
        return None
    per_image_s = (big["wall_s"] - small["wall_s"]) / (big["images"] - small["images"])
    if per_image_s <= 0:
        return None  # the machine's noise exceeded the difference: no line to draw
    return small["wall_s"] - small["images"] * per_image_s, per_image_s * 1e3


def ray_vs_local(
    photos: Path,
    sizes: tuple[int, int],
    cache_dir: Path,
    tmp: Path,
    actors: int = 2,
    repeats: int = 1,
) -> dict[str, Any]:
    """Both engines on folders of ``sizes`` images, runs interleaved; the fitted lines.

    Returns:
        ``runs`` (wall seconds per engine and size, the best of ``repeats``), ``local`` and
        ``ray`` (``fixed_s``, ``per_image_ms``), ``break_even_images`` (None: Ray is not faster
        per image here), and ``per_actor_images_per_s``.
    """
    try:
        import ray  # noqa: F401  (only to say it is missing)
    except ImportError:
        return {"error": "Ray is not installed: .venv/bin/python -m pip install 'ray[data]'"}
    folders = {n: make_folder(photos, n, cache_dir) for n in sizes}
    runs: dict[str, dict[str, Any]] = {}
    for r in range(repeats):
        for n in sizes:
            for engine in ("local", "ray"):
                extra = ("--ray-actors", str(actors)) if engine == "ray" else ()
                res = timed_run(folders[n], engine, tmp, f"{engine}_{n}_{r}", extra)
                key = f"{engine}_{n}"
                if key not in runs or res.get("wall_s", 1e9) < runs[key].get("wall_s", 1e9):
                    runs[key] = res
    small, big = sizes
    out: dict[str, Any] = {"images": list(sizes), "actors": actors, "runs": runs}
    for engine in ("local", "ray"):
        fit = _line(runs[f"{engine}_{small}"], runs[f"{engine}_{big}"])
        out[engine] = (
            {"fixed_s": fit[0], "per_image_ms": fit[1]}
            if fit
            else {"error": "a run failed, or noise hid the cost per image (try --repeats 3)"}
        )
    lo, ra = out["local"], out["ray"]
    if "fixed_s" in lo and "fixed_s" in ra:
        gain_ms = lo["per_image_ms"] - ra["per_image_ms"]
        extra_s = ra["fixed_s"] - lo["fixed_s"]
        out["break_even_images"] = extra_s * 1e3 / gain_ms if gain_ms > 0 else None
    out["per_actor_images_per_s"] = runs[f"ray_{big}"].get("per_actor_images_per_s")
    return out


def format_lines(res: dict[str, Any]) -> list[str]:
    """The report's lines for this measurement."""
    if "error" in res:
        return [f"ray engine vs local: not measured ({res['error']})"]
    small, big = res["images"]
    lines = [
        f"ray engine vs local, image folder, --no-video ({res['actors']} actors; whole command "
        "timed in its own process; the line through the two sizes):"
    ]
    for engine in ("local", "ray"):
        fit = res[engine]
        walls = " / ".join(
            f"{res['runs'][f'{engine}_{n}'].get('wall_s', float('nan')):.1f} s"
            for n in (small, big)
        )
        if "fixed_s" in fit:
            lines.append(
                f"  {engine:5}: {walls} for {small} / {big} images → fixed {fit['fixed_s']:.1f} s "
                f"+ {fit['per_image_ms']:.1f} ms per image"
            )
        else:
            lines.append(f"  {engine:5}: {walls}: {fit['error']}")
    be = res.get("break_even_images", "n/a")
    if be is None:
        lines.append("  break-even: never on this machine (Ray is not faster per image here)")
    elif isinstance(be, float):
        lines.append(f"  break-even: about {be:.0f} images")
    steady = res["runs"].get(f"ray_{big}", {}).get("steady_ms_per_image")
    first = res["runs"].get(f"ray_{big}", {}).get("first_result_s")
    if steady is not None:
        lines.append(
            f"  ray, inside the {big}-image run: first result {first:.1f} s after Ray started, "
            f"then {steady:.1f} ms per image"
        )
    per_actor = res.get("per_actor_images_per_s")
    if per_actor:
        lines.append(f"  per actor: {per_actor:.1f} images per busy second (scales with actors)")
    return lines
