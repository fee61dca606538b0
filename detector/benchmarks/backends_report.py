"""The backend column's goals and table: which backend is fastest and passes parity, in text."""

from __future__ import annotations

from typing import Any

#: The openvino backend's target: its pipeline at least this many times the tf pipeline's frames/s.
PIPELINE_GOAL = 1.3


def goals(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The backends' two targets, from this run's figures: the fastest backend that passes
    parity runs the pipeline ``PIPELINE_GOAL`` times as fast as tf, and two calls in flight at
    least as fast as LiteRT on the original ``.tflite``."""
    rows = section.get("rows", {})
    tf_pipe = rows.get("tf", {}).get("pipeline", {}).get("fps")
    passing = {
        name: row
        for name, row in rows.items()
        if name != "tf" and row.get("parity", {}).get("passed") and "pipeline" in row
    }
    out: list[dict[str, Any]] = []
    if tf_pipe and passing:

        def x_tf(name: str) -> float:  # the rounds' paired ratio where the bench has it
            pipe = passing[name]["pipeline"]
            return float(pipe.get("x_tf") or pipe["fps"] / tf_pipe)

        best = max(passing, key=x_tf)
        ratio = x_tf(best)
        out.append(
            {
                "what": f"pipeline {best} ÷ pipeline tf (sample video)",
                "value": ratio,
                "goal": f"≥ {PIPELINE_GOAL}",
                "met": ratio >= PIPELINE_GOAL,
            }
        )
    out += _default_goals(section)
    flights = {n: r["in_flight_2"]["fps"] for n, r in passing.items() if "in_flight_2" in r}
    peer = section.get("peer_litert", {}).get("in_flight_2", {}).get("fps")
    if flights and peer:
        best = max(flights, key=lambda n: flights[n])
        out.append(
            {
                "what": f"bare 2 in flight {best} ÷ LiteRT peer (same run)",
                "value": flights[best] / peer,
                "goal": "≥ 1",
                "met": flights[best] >= peer,
            }
        )
    return out


def _goal(what: str, value: float | None, goal: str, met: bool) -> list[dict[str, Any]]:
    return [] if value is None else [{"what": what, "value": value, "goal": goal, "met": met}]


def side_by_side(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per row: pipeline f/s, start-up s, RSS MB after the long run, each with its ratio to tf."""
    rows = section.get("rows", {})
    start = section.get("startup", {})
    table: dict[str, dict[str, Any]] = {}
    for name, row in rows.items():
        rss = row.get("rss", {})
        table[name] = {
            "pipeline_fps": row.get("pipeline", {}).get("fps"),
            "startup_s": start.get(name, {}).get("process_s"),
            "rss_mb": rss.get("rss", {}).get("rss_mb_last"),
            "tensorflow_loaded": rss.get("tensorflow_loaded"),
            "choice": (row.get("choice") or {}).get("reason"),
        }
    base = table.get("tf", {})
    for name, entry in table.items():
        for key in ("pipeline_fps", "startup_s", "rss_mb"):
            mine, ref = entry.get(key), base.get(key)
            entry[key + "_x_tf"] = mine / ref if mine and ref else None
        # the median of the rounds' ratios (rows taking turns), where the bench has it
        paired = rows[name].get("pipeline", {}).get("x_tf")
        if paired is not None:
            entry["pipeline_fps_x_tf"] = paired
    return table


def _default_goals(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The default backend against tf: frames/s, start-up, memory; post-processing; cameras."""
    table = side_by_side(section)
    d, q = table.get("default", {}), table.get("openvino int8", {})
    out = _goal(
        "pipeline default ÷ tf",
        d.get("pipeline_fps_x_tf"),
        f"≥ {PIPELINE_GOAL}",
        (d.get("pipeline_fps_x_tf") or 0) >= PIPELINE_GOAL,
    )
    out += _goal(
        "pipeline int8 ÷ tf",
        q.get("pipeline_fps_x_tf"),
        "≥ 1.5",
        (q.get("pipeline_fps_x_tf") or 0) >= 1.5,
    )
    out += _goal(
        "start-up default ÷ tf",
        d.get("startup_s_x_tf"),
        "≤ 0.5",
        (d.get("startup_s_x_tf") or 9) <= 0.5,
    )
    out += _goal(
        "RSS default ÷ tf", d.get("rss_mb_x_tf"), "≤ 0.35", (d.get("rss_mb_x_tf") or 9) <= 0.35
    )
    post = section.get("post", {}).get("numpy_threshold", {}).get("ms_p50")
    out += _goal(
        "post-processing ms a frame (NumPy, at the threshold)", post, "≤ 0.5", (post or 9) <= 0.5
    )
    cams = section.get("streams", {}).get("default", {}).get("largest_n")
    out += _goal("10 fps cameras held, default backend", cams, "≥ 10", (cams or 0) >= 10)
    ray = section.get("ray_fixed", {}).get("x_tf")
    out += _goal(
        "Ray fixed cost, openvino ÷ tf actors", ray, "≤ 0.5", ray is not None and ray <= 0.5
    )
    return out


def format_side_by_side(section: dict[str, Any]) -> list[str]:
    """The ratio table (rows with a long run or a start-up), post-processing and streams lines."""

    def f(x: Any, fmt: str = "{:.1f}") -> str:
        return "-" if x is None else fmt.format(x)

    table = side_by_side(section)
    lines = [
        "  side by side, ratio to tf in brackets (same run; pipeline: the median of each run's"
        " ratio to the tf runs beside it)"
    ]
    lines.append(
        f"    {'row':<14} {'pipeline f/s':>18} {'start-up s':>16} {'RSS MB, long run':>20}"
        "  TF loaded"
    )
    for name, e in table.items():
        if e["rss_mb"] is None and e["startup_s"] is None:
            continue
        loaded = e["tensorflow_loaded"]
        lines.append(
            f"    {name:<14} {f(e['pipeline_fps']):>9} ({f(e['pipeline_fps_x_tf'], '{:.2f}')}x)"
            f" {f(e['startup_s']):>7} ({f(e['startup_s_x_tf'], '{:.2f}')}x)"
            f" {f(e['rss_mb'], '{:.0f}'):>11} ({f(e['rss_mb_x_tf'], '{:.2f}')}x)"
            f"  {'-' if loaded is None else 'yes' if loaded else 'no'}"
        )
    post = section.get("post", {})
    if post and "error" not in post:
        lines.append(
            "  post-processing ms a frame (p50, same network outputs): TF graph "
            f"{f(post['tf']['ms_p50'], '{:.2f}')}, NumPy all rows "
            f"{f(post['numpy']['ms_p50'], '{:.2f}')}, NumPy at the threshold "
            f"{f(post['numpy_threshold']['ms_p50'], '{:.2f}')}; "
            f"{post['agree_with_tf']}/{post['frames']} frames identical to TF's"
        )
    for name, s in section.get("streams", {}).items():
        if "error" in s:
            lines.append(f"  streams, {name}: error: {str(s['error']).splitlines()[-1][:120]}")
            continue
        batch = s.get("batch_fps")
        extra = (
            "; network at batch 1/2/4: "
            + "/".join(f(batch.get(str(b))) for b in (1, 2, 4))
            + " f/s, "
            + "/".join(f(batch.get(f"cpu_ms_{b}")) for b in (1, 2, 4))
            + f" CPU-ms a frame (best {batch.get('best')})"
            if batch
            else ""
        )
        held = s.get("trials", {}).get(str(s.get("largest_n")), {})
        cpu = held.get("cpu_ms_per_frame")
        lines.append(
            f"  streams, {name} ({s.get('backend')} {s.get('precision')}): {s.get('largest_n')} "
            f"cameras at 10 f/s held (every one ≥ 95% of its frames, p95 ≤ 200 ms; "
            f"{f(cpu)} CPU-ms a frame){extra}"
        )
        parts = s.get("cpu_parts")
        if parts:
            lines.append(
                f"    CPU-ms a frame, part by part: engine {f(parts.get('engine'))} (BGR→RGB, "
                f"resize, network, post-processing), render + outputs "
                f"{f(parts.get('render_and_outputs'))} (of which drawing {f(parts.get('draw'))})"
            )
    lines += _ray_lines(section.get("ray_fixed"))
    return lines


def _ray_lines(ray: dict[str, Any] | None) -> list[str]:
    """The Ray engine's fixed cost, tf actors beside openvino actors."""
    if not ray:
        return []
    if "error" in ray:
        return [f"  Ray engine's fixed cost: error: {str(ray['error']).splitlines()[-1][:120]}"]
    parts = []
    for backend in ("tf", "openvino"):
        run = ray.get(backend, {})
        if "error" in run:
            parts.append(f"{backend} actors: error {str(run['error']).splitlines()[-1][:80]}")
        elif run:
            parts.append(
                f"{backend} actors {run['start_to_first_result_s']:.1f} s (Ray's start "
                f"{run['ray_start_s']:.1f} + actors to first result {run['first_result_s']:.1f}; "
                f"whole command {run['wall_s']:.1f} s)"
            )
    ratio = ray.get("x_tf")
    tail = f"; openvino ÷ tf {ratio:.2f}" if ratio is not None else ""
    return [
        f"  Ray engine's fixed cost, Ray start to first result ({ray.get('images')} photos, "
        f"{ray.get('actors')} actors): " + ", ".join(parts) + tail
    ]


def format_backends(section: dict[str, Any]) -> str:
    """The backend table, start-up and goals as text."""
    f = _f
    lines = [
        f"backends (sample video, {section.get('frames')} frames, "
        f"{section.get('repeats')} repeat(s), medians; 2 in flight = two 1-thread callers)"
    ]
    head = (
        f"  {'backend':<14} {'1 thr ms':>8} {'2 thr ms':>8} {'2-flight f/s':>12} "
        f"{'pipeline f/s':>12}  parity on photos"
    )
    lines.append(head)
    rows = dict(section.get("rows", {}))
    peer = section.get("peer_litert", {})
    if "error" not in peer:
        rows["litert (peer)"] = peer
    lines += [_row_line(name, row) for name, row in rows.items()]
    lines += format_side_by_side(section)
    lines += _stage_lines(section.get("rows", {}))
    st = section.get("startup", {})
    if st:
        parts = [f"{k} {f(v.get('process_s'))} s" for k, v in st.items() if "error" not in v]
        lines.append("  start-up, process start to first detection: " + ", ".join(parts))
    q = section.get("int8", {})
    if q:
        if "error" in q:
            lines.append(f"  int8: not used: {str(q['error']).splitlines()[0][:160]}")
        else:
            p = q.get("parity", {})
            lines.append(
                f"  int8 gate (held-apart photos): {p.get('matched')}/"
                f"{max(p.get('reference', 0), p.get('candidate', 0))} matched, "
                f"{'pass' if p.get('passed') else 'FAIL'}"
            )
    for g in section.get("goals", []):
        lines.append(
            f"  goal: {g['what']}: {f(g['value'], '{:.2f}')} {g['goal']} -> "
            f"{'met' if g['met'] else 'missed'}"
        )
    if section.get("note"):
        lines.append(f"  note: {section['note']}")
    return "\n".join(lines)


#: The pipeline's CPU a frame by where it is spent (``throughput.ThreadCpu``), as printed.
STAGES = (
    ("decode", "decode"),
    ("detect_calls", "inference threads"),
    ("runtime_threads", "runtime's threads"),
    ("render", "render + sinks"),
    ("encoder_threads", "x264 threads"),
    ("other", "other"),
)


def _stage_lines(rows: dict[str, Any]) -> list[str]:
    """Where each row's pipeline CPU goes, ms a frame (medians over every run)."""
    out = []
    for name, row in rows.items():
        pipe = row.get("pipeline", {})
        stages = pipe.get("cpu_ms_by_stage")
        if not stages:
            continue
        parts = ", ".join(f"{label} {_f(stages.get(key), '{:.2f}')}" for key, label in STAGES)
        runs = pipe.get("fps_repeats") or []
        out.append(
            f"    {name:<14} {_f(pipe.get('cpu_ms_per_frame'), '{:.2f}')} CPU-ms a frame: "
            f"{parts} ({len(runs)} runs, f/s {_f(min(runs) if runs else None)}–"
            f"{_f(max(runs) if runs else None)})"
        )
    return ["  pipeline CPU-ms a frame, by where it is spent:", *out] if out else []


def _f(x: Any, fmt: str = "{:.1f}") -> str:
    return "-" if x is None else fmt.format(x)


def _row_line(name: str, row: dict[str, Any]) -> str:
    """One backend's line: latencies, rates and its parity against the TF graph."""
    parity = row.get("parity", {})
    par = (
        f"{parity['matched']}/{max(parity['reference'], parity['candidate'])} "
        f"{'pass' if parity['passed'] else 'FAIL'}"
        if parity
        else "reference"
        if name == "tf"
        else "-"
    )
    if name == "tf" and parity:
        par += " (bf16 vs fp32 graph)"
    return (
        f"  {name:<14} {_f(row.get('bare_1_thread', {}).get('latency_ms_p50')):>8} "
        f"{_f(row.get('bare_2_threads', {}).get('latency_ms_p50')):>8} "
        f"{_f(row.get('in_flight_2', {}).get('fps')):>12} "
        f"{_f(row.get('pipeline', {}).get('fps')):>12}  {par}"
        + (f"  error: {str(row['error']).splitlines()[-1][:80]}" if "error" in row else "")
    )
