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
        best = max(passing, key=lambda n: passing[n]["pipeline"]["fps"])
        ratio = passing[best]["pipeline"]["fps"] / tf_pipe
        out.append(
            {
                "what": f"pipeline {best} ÷ pipeline tf (sample video)",
                "value": ratio,
                "goal": f"≥ {PIPELINE_GOAL}",
                "met": ratio >= PIPELINE_GOAL,
            }
        )
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
