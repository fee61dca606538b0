"""Ratios, targets (met / missed by how much) and the printed table of a bench run."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from detector.benchmarks.backends_report import format_backends
from detector.benchmarks.ray_engine import format_lines
from detector.benchmarks.sections import section_lines

# (name, what, goal, higher_is_better)
TARGETS = (
    ("pipeline/bare 576p", "pipeline ÷ bare model, 576p", 0.95, True),
    ("pipeline/bare 1080p", "pipeline ÷ bare model, 1080p", 0.90, True),
    ("pipeline/naive 576p", "pipeline ÷ naive loop, 576p", 1.2, True),
    ("pipeline/naive 1080p", "pipeline ÷ naive loop, 1080p", 1.6, True),
    ("pipeline/budget 576p", "pipeline ÷ 2-core CPU budget, 576p", 0.9, True),
    ("model/tflite 1 thread", "our model ms ÷ TFLite ms, 1 thread", 1.0, False),
    ("model/tflite 2 threads", "our model ms ÷ TFLite ms, 2 threads", 1.0, False),
    ("detect_every 2 gain", "output fps gain at detect_every 2 (≥ 0.9·N)", 1.8, True),
    ("detect_every 4 gain", "output fps gain at detect_every 4 (≥ 0.9·N)", 3.6, True),
    ("live p50 ms", "live latency p50, 30 fps paced", 30.0, False),
    ("live p95 ms", "live latency p95, 30 fps paced", 40.0, False),
    ("live dropped", "live frames dropped", 0.0, False),
    ("web viewers fps ratio", "inference fps, 5 web viewers (1 stalled) ÷ none", 0.95, True),
    ("web viewers p95 delta ms", "live p95 latency, 5 web viewers − none, ms", 10.0, False),
    ("memory growth %", "RSS growth, long run", 5.0, False),
    ("h264/mp4v writer CPU 576p", "H.264 writer CPU-ms ÷ mp4v's, 576p", 1.3, False),
    ("pipeline h264/mp4v 576p", "pipeline frames/s writing H.264 ÷ writing mp4v, 576p", 0.95, True),
    ("track coverage N=4", "bytetrack: reference boxes covered, detect_every 4", 0.85, True),
    ("track coverage N=8", "bytetrack: reference boxes covered, detect_every 8", 0.70, True),
)


def _get(d: dict[str, Any], *keys: str) -> float:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return float("nan")
        d = d[k]
    return float(d) if isinstance(d, (int, float)) else float("nan")


def _div(a: float, b: float) -> float:
    return a / b if b and not math.isnan(a) and not math.isnan(b) else float("nan")


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Add ``ratios`` per video and the ``targets`` list to ``results`` (in place) and return it."""
    cores = results["machine"].get("usable_cores") or results["machine"].get("cores") or 1
    ratios = {label: _ratios(v, cores) for label, v in results.get("videos", {}).items()}
    results["ratios"] = ratios
    labels = list(results.get("videos", {}))
    small = labels[0] if labels else "576p"
    big = labels[-1] if labels else "1080p"
    values = _target_values(results, ratios, small)
    results["targets"] = [
        _target(key, what, goal, higher, values[key], small, big)
        for key, what, goal, higher in TARGETS
    ]
    return results


def _ratios(v: dict[str, Any], cores: int) -> dict[str, float]:
    """One video's ratios: pipeline against bare model, naive loop and the CPU budget."""
    fps = _get(v, "pipeline", "fps")
    # the model's CPU cost: the lower of one caller and two callers (one caller's idle
    # thread-pool spinning is not work the model needs)
    model_cpu = min(
        _get(v, "bare", "cpu_ms_per_frame"), _get(v, "bare_2_streams", "cpu_ms_per_frame")
    )
    if math.isnan(model_cpu):
        model_cpu = _get(v, "bare", "cpu_ms_per_frame")
    other_cpu = _get(v, "no_model", "cpu_ms_per_frame")
    budget = _div(1000.0 * cores, model_cpu + other_cpu)
    r = {
        "pipeline/bare": _div(fps, _get(v, "bare", "fps")),
        "pipeline/naive": _div(fps, _get(v, "naive", "fps")),
        "cpu_budget_fps": budget,
        "pipeline/budget": _div(fps, budget),
        "every_2_gain": _div(_get(v, "pipeline_every_2", "fps"), fps),
        "every_4_gain": _div(_get(v, "pipeline_every_4", "fps"), fps),
    }
    if "pipeline_w2" in v:
        r["workers2/workers1"] = _div(_get(v, "pipeline_w2", "fps"), _get(v, "pipeline_w1", "fps"))
        r["session_each/shared"] = _div(
            _get(v, "pipeline_w2_session_each", "fps"), _get(v, "pipeline_w2", "fps")
        )
    if "pipeline_h264" in v:
        r["h264/mp4v"] = _div(_get(v, "pipeline_h264", "fps"), _get(v, "pipeline_mp4v", "fps"))
    return r


def _target_values(
    results: dict[str, Any], ratios: dict[str, dict[str, float]], small: str
) -> dict[str, float]:
    lat = results.get("model_latency", {})
    model_ratio = {
        t: _div(
            _get(lat, f"ours_{t}", "latency_ms_p50"), _get(lat, f"tflite_{t}", "latency_ms_p50")
        )
        for t in (1, 2)
    }
    big = list(ratios)[-1] if ratios else "1080p"
    return {
        "pipeline/bare 576p": ratios.get(small, {}).get("pipeline/bare", math.nan),
        "pipeline/bare 1080p": ratios.get(big, {}).get("pipeline/bare", math.nan),
        "pipeline/naive 576p": ratios.get(small, {}).get("pipeline/naive", math.nan),
        "pipeline/naive 1080p": ratios.get(big, {}).get("pipeline/naive", math.nan),
        "pipeline/budget 576p": ratios.get(small, {}).get("pipeline/budget", math.nan),
        "model/tflite 1 thread": model_ratio[1],
        "model/tflite 2 threads": model_ratio[2],
        "detect_every 2 gain": ratios.get(small, {}).get("every_2_gain", math.nan),
        "detect_every 4 gain": ratios.get(small, {}).get("every_4_gain", math.nan),
        "live p50 ms": _get(results, "live", "latency_ms_p50"),
        "live p95 ms": _get(results, "live", "latency_ms_p95"),
        "live dropped": _get(results, "live", "dropped"),
        "web viewers fps ratio": _get(results, "web", "fps_ratio"),
        "web viewers p95 delta ms": _get(results, "web", "p95_delta_ms"),
        "memory growth %": _get(results, "memory", "growth_pct"),
        "h264/mp4v writer CPU 576p": _div(
            _get(results, "video_io", small, "write", "h264", "cpu_ms_per_frame"),
            _get(results, "video_io", small, "write", "mp4v", "cpu_ms_per_frame"),
        ),
        "pipeline h264/mp4v 576p": ratios.get(small, {}).get("h264/mp4v", math.nan),
        "track coverage N=4": _get(results, "track", "bytetrack", "coverage", "4"),
        "track coverage N=8": _get(results, "track", "bytetrack", "coverage", "8"),
    }


_SAMPLE_TARGETS = (
    "pipeline/bare 576p",
    "pipeline/naive 576p",
    "pipeline/budget 576p",
    "detect_every 2 gain",
    "detect_every 4 gain",
)


def _target(
    key: str, what: str, goal: float, higher: bool, val: float, small: str, big: str
) -> dict[str, Any]:
    if math.isnan(val):
        status = "not measured"
    elif (val >= goal) if higher else (val <= goal):
        status = "met"
    else:
        gap = goal - val if higher else val - goal
        status = f"missed by {gap:.2f}" if abs(goal) < 10 or gap < 10 else f"missed by {gap:.0f}"
    if key in _SAMPLE_TARGETS:
        what = what.replace("576p", small)
    if key.endswith("1080p"):
        what = what.replace("1080p", big)
    return {
        "target": key,
        "what": what,
        "value": val,
        "goal": f"{'≥' if higher else '≤'} {goal:g}",
        "status": status,
    }


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    if isinstance(x, bool):
        return "yes" if x else "NO"
    if isinstance(x, (int, float)) and not (isinstance(x, float) and math.isnan(x)):
        return fmt.format(x)
    return "–"


def format_table(results: dict[str, Any]) -> str:
    """The human-readable report: per-resolution table, model latency, live, memory, targets."""
    lines = _header_lines(results)
    lines += _video_table(results)
    for key, section in _SECTIONS:
        if results.get(key):
            lines += section(results[key])
    lines.extend(section_lines(results))
    if results.get("targets"):
        lines.append("")
        lines.append("targets")
        wt = max(len(t["what"]) for t in results["targets"])
        for t in results["targets"]:
            lines.append(
                f"  {t['what']:<{wt}}  {_f(t['value'], '{:.2f}'):>7}  {t['goal']:>6}  {t['status']}"
            )
    lines.append("")
    lines.append(f"bench took {_f(results.get('elapsed_s'), '{:.0f}')} s")
    return "\n".join(lines)


#: The per-video table: (row name, result key, field, format).
_ROWS = (
    ("bare model  frames/s", "bare", "fps", "{:.1f}"),
    ("bare model  ms/frame (p50)", "bare", "latency_ms_p50", "{:.1f}"),
    ("bare model  CPU-ms/frame", "bare", "cpu_ms_per_frame", "{:.1f}"),
    ("bare model, 2 callers  frames/s", "bare_2_streams", "fps", "{:.1f}"),
    ("no model (read+draw+write)  CPU-ms/frame", "no_model", "cpu_ms_per_frame", "{:.1f}"),
    ("no model  frames/s", "no_model", "fps", "{:.1f}"),
    ("naive loop  frames/s", "naive", "fps", "{:.1f}"),
    ("pipeline (video+jsonl)  frames/s", "pipeline", "fps", "{:.1f}"),
    ("pipeline  CPU cores used", "pipeline", "cores_used", "{:.2f}"),
    ("pipeline, 1 worker  frames/s", "pipeline_w1", "fps", "{:.1f}"),
    ("pipeline, 2 workers, one shared session  frames/s", "pipeline_w2", "fps", "{:.1f}"),
    ("pipeline, 2 workers, a session each  frames/s", "pipeline_w2_session_each", "fps", "{:.1f}"),
    ("pipeline detect_every 2  frames/s", "pipeline_every_2", "fps", "{:.1f}"),
    ("pipeline detect_every 4  frames/s", "pipeline_every_4", "fps", "{:.1f}"),
    ("pipeline writing H.264  frames/s", "pipeline_h264", "fps", "{:.1f}"),
    ("pipeline writing mp4v  frames/s", "pipeline_mp4v", "fps", "{:.1f}"),
)
#: The per-video ratios under it: (row name, ratio key, format).
_RATIO_ROWS = (
    ("pipeline H.264 ÷ mp4v", "h264/mp4v", "{:.2f}"),
    ("pipeline ÷ bare", "pipeline/bare", "{:.2f}"),
    ("pipeline ÷ naive", "pipeline/naive", "{:.2f}"),
    ("2-core CPU budget  frames/s", "cpu_budget_fps", "{:.1f}"),
    ("pipeline ÷ CPU budget", "pipeline/budget", "{:.2f}"),
    ("detect_every 2 gain", "every_2_gain", "{:.2f}"),
    ("detect_every 4 gain", "every_4_gain", "{:.2f}"),
    ("2 workers ÷ 1 worker", "workers2/workers1", "{:.2f}"),
    ("a session each ÷ one shared session", "session_each/shared", "{:.2f}"),
)


def _video_table(results: dict[str, Any]) -> list[str]:
    vids = results.get("videos", {})
    cols = list(vids)
    rows: list[tuple[str, list[str]]] = [
        (name, [_f(vids[c].get(key, {}).get(field), fmt) for c in cols])
        for name, key, field, fmt in _ROWS
        if any(key in vids[c] for c in cols)
    ]
    r = results.get("ratios", {})
    for name, key, fmt in _RATIO_ROWS:
        vals = [r.get(c, {}).get(key) for c in cols]
        if any(isinstance(v, float) and not math.isnan(v) for v in vals):
            rows.append((name, [_f(v, fmt) for v in vals]))
    if not rows:
        return []
    w0 = max([len(name) for name, _ in rows] + [10])
    lines = [f"{'':<{w0}}  " + "  ".join(f"{c:>8}" for c in cols)]
    lines += [f"{name:<{w0}}  " + "  ".join(f"{v:>8}" for v in vals) for name, vals in rows]
    return [*lines, ""]


def _header_lines(results: dict[str, Any]) -> list[str]:
    m = results.get("machine", {})
    vers = m.get("versions", {})
    s = results.get("settings", {})
    o = results.get("options", {})
    return [
        f"machine: {m.get('cpu')} · {m.get('usable_cores')} cores · "
        f"load {_f(m.get('load_avg_1m'), '{:.2f}')} · "
        + " ".join(f"{k} {v}" for k, v in vers.items()),
        f"model: {s.get('path')} · backend {s.get('backend')} -> {s.get('backend_used', '?')} "
        f"· device {s.get('device')} {s.get('precision_used', '')} "
        f"· intra_op {s.get('intra_op_threads')} "
        f"· inter_op {s.get('inter_op_threads')} · workers {s.get('workers')} "
        f"· precision {s.get('precision')}",
        f"frames per measurement {o.get('frames')} (warm-up {o.get('warmup')} excluded), "
        f"median of {o.get('repeats')} repeats",
        "",
    ]


def _latency_lines(lat: dict[str, Any]) -> list[str]:
    if not lat:
        return []
    lines = [
        "model latency, 576p frames, ms p50 (CPU-ms/frame); our session in its own "
        "process, ops in the calling thread;",
        "  TFLite timed with its resize + BGR→RGB, invoke alone in brackets",
    ]
    for t in (1, 2):
        ours = lat.get(f"ours_{t}", {})
        tfl = lat.get(f"tflite_{t}", {})
        lines.append(
            f"  {t} thread{'s' if t > 1 else ' '}: "
            f"ours {_f(ours.get('latency_ms_p50'))}"
            f" ({_f(ours.get('cpu_ms_per_frame'))}, {ours.get('precision', '?')})"
            f"   TFLite {_f(tfl.get('latency_ms_p50'))}"
            f" [{_f(tfl.get('invoke_ms_p50'))}]"
            f" ({_f(tfl.get('cpu_ms_per_frame'))})"
        )
    fp = lat.get("ours_1_fp32")
    if fp:
        lines.append(
            f"  1 thread, float32 (no bfloat16): ours {_f(fp.get('latency_ms_p50'))}"
            f" ({_f(fp.get('cpu_ms_per_frame'))})"
        )
    return lines


def _live_lines(lv: dict[str, Any]) -> list[str]:
    return [
        f"live, paced {lv['fps_paced']:g} fps keep-newest: "
        f"latency p50 {_f(lv['latency_ms_p50'])} ms, "
        f"p95 {_f(lv['latency_ms_p95'])} ms, max {_f(lv['latency_ms_max'])} ms; "
        f"{lv['frames_out']}/{lv['frames_read']} frames out, {lv['dropped']} dropped"
    ]


def _web_lines(web: dict[str, Any]) -> list[str]:
    lines = []
    for name, what in (("paced", f"paced {web['fps_paced']:g} fps"), ("flat_out", "flat out")):
        a, b = web[name]["none"], web[name]["viewers"]
        lines.append(
            f"web view, {what}: no viewer {_f(a['inference_fps'])} inferences/s, "
            f"p95 {_f(a['latency_ms_p95'])} ms; {web['viewers']} viewers (1 stalled) "
            f"{_f(b['inference_fps'])}/s, p95 {_f(b['latency_ms_p95'])} ms, "
            f"{b['jpeg_encodes']:.0f} JPEG encodes for {b['frames_out']:.0f} frames, "
            f"CPU {_f(a['cpu_ms_per_frame'])} → {_f(b['cpu_ms_per_frame'])} ms/frame, "
            f"{b['viewers_dropped']:.0f} viewer dropped, {_f(b['mb_sent'])} MB sent"
        )
    return lines


def _memory_lines(mem: dict[str, Any]) -> list[str]:
    if "error" in mem:
        return [f"memory: not measured ({mem['error'].splitlines()[-1]})"]
    return [
        f"memory (app process): RSS {_f(mem['rss_mb_first'])} MB "
        f"after {mem['frames_first']} frames, "
        f"{_f(mem['rss_mb_last'])} MB after {mem['frames_last']} "
        f"({_f(mem['growth_pct'], '{:+.1f}')}%)"
    ]


def _split_lines(sp: dict[str, Any]) -> list[str]:
    return [
        f"split model ({sp.get('device')}; cut {', '.join(sp.get('cut', []))}): "
        f"{_f(sp.get('fps'))} frames/s with 2 in flight, "
        f"network {_f(sp.get('network_ms'))} ms "
        f"+ post {_f(sp.get('post_ms'))} ms, "
        f"same outputs as whole: {_f(sp.get('same_outputs'))}"
    ]


def _video_io_lines(vio: dict[str, Any]) -> list[str]:
    """The video writer / decoder table: CPU-ms (wall ms) per frame, per size."""
    if not vio:
        return []
    cols = list(vio)
    names: list[tuple[str, str]] = []
    for c in cols:
        for kind in ("write", "decode"):
            for name in vio[c].get(kind, {}):
                if (kind, name) not in names:
                    names.append((kind, name))
    lines = ["video i/o, CPU-ms per frame (wall ms), every thread counted:"]
    w0 = max(len(f"{k} {n}") for k, n in names) + 2
    lines.append(f"  {'':<{w0}}" + "".join(f"{c:>16}" for c in cols))
    for kind, name in names:
        cells = []
        for c in cols:
            d = vio[c].get(kind, {}).get(name, {})
            cells.append(
                f"{_f(d.get('cpu_ms_per_frame'))} ({_f(d.get('wall_ms_per_frame'))})" if d else "–"
            )
        lines.append(f"  {kind + ' ' + name:<{w0}}" + "".join(f"{x:>16}" for x in cells))
    return lines


def format_tracking(tr: dict[str, Any] | None) -> list[str]:
    """The tracking section: coverage per ``detect_every``, id switches, CPU cost."""
    if not tr:
        return []
    every = list(tr.get("static", {}))
    names = {
        "bytetrack": "bytetrack, flow motion",
        "bytetrack_kalman": "bytetrack, Kalman only",
        "sort": "sort, flow motion",
    }
    kinds = [k for k in names if k in tr]
    lines = [
        "",
        f"tracking, {tr['frames']} frames of the sample ({_f(tr['reference_per_frame'])} "
        f"reference boxes a frame, score >= {tr['threshold']:g}): share of the every-frame "
        "boxes covered",
        "  on the frames between model runs (same class, IoU >= 0.5)",
        f"  {'detect_every':<28}" + "".join(f"{'N=' + n:>8}" for n in every),
        f"  {'static (no tracker)':<28}"
        + "".join(f"{_f(tr['static'][n], '{:.3f}'):>8}" for n in every),
    ]
    for kind in kinds:
        cov = tr[kind]["coverage"]
        lines.append(
            f"  {names[kind]:<28}" + "".join(f"{_f(cov.get(n), '{:.3f}'):>8}" for n in every)
        )
    for kind in kinds:
        row = tr[kind]
        cpu = row["cpu_ms_per_frame"]
        lines.append(
            f"  {names[kind]}: {_f(row['id_switches_per_100'], '{:.2f}')} id switches per 100 "
            f"frames at N=1 ({row['ids']} ids); CPU-ms/frame on the sample "
            + ", ".join(f"N={n} {_f(v, '{:.2f}')}" for n, v in cpu.items())
        )
    cost = tr.get("cost_synthetic")
    if cost:
        lines.append(
            f"  CPU-ms/frame with {cost['objects']} objects in view (synthetic): "
            + "; ".join(
                f"{names[k]} " + ", ".join(f"N={n} {_f(v, '{:.2f}')}" for n, v in cost[k].items())
                for k in kinds
                if k in cost
            )
        )
    return lines


#: The lines after the per-video table: a section's result key and its formatter, in order
#: (sections the registry formats itself follow them).
_SECTIONS: tuple[tuple[str, Callable[[dict[str, Any]], list[str]]], ...] = (
    ("model_latency", _latency_lines),
    ("video_io", _video_io_lines),
    ("live", _live_lines),
    ("web", _web_lines),
    ("memory", _memory_lines),
    ("split", _split_lines),
    ("ray_engine", format_lines),
    ("track", format_tracking),
    ("backends", lambda result: [format_backends(result)]),
)
