"""Events over MQTT to a real broker (Debian's mosquitto), checked by an independent subscriber
(mosquitto_sub): every event of events.jsonl arrives, the retained counts are the run's, the
last will says offline when the run is killed, and a broker that goes away and comes back
loses nothing the pipeline waits for."""

from __future__ import annotations

import json
import logging
import time
import uuid

import pytest
from helpers.broker import Subscriber, free_port, retained
from helpers.cli_run import RunningCli, only_run_folder, run_cli
from helpers.event_scenes import run_scene
from helpers.moving_squares import Square

from detector.events.mqtt import MqttSink
from detector.events.options import MqttSpec
from detector.events.spec import LineSpec, ZoneSpec
from detector.fetch.assets import SAMPLE_VIDEO

needs_model = pytest.mark.usefixtures("default_graph", "sample_video")  # skipped until fetched

VTEST_EVENTS = """\
zones:
  - name: left
    polygon: [[0, 0.3], [0.4, 0.3], [0.4, 1], [0, 1]]
    classes: [person]
lines:
  - name: middle
    start: [0.5, 0]
    end: [0.5, 1]
events:
  mqtt: {{host: 127.0.0.1, port: {port}, topic_prefix: {prefix}, qos: 1}}
"""


def _config(tmp_path, broker):
    """A config with a zone, a line and MQTT to ``broker`` under a fresh prefix."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    config = tmp_path / "events.yml"
    config.write_text(VTEST_EVENTS.format(port=broker.port, prefix=prefix))
    return config, prefix


@pytest.mark.e2e
@needs_model
def test_every_event_reaches_the_broker_and_counts_are_retained(tmp_path, broker):
    config, prefix = _config(tmp_path, broker)
    sub = Subscriber(broker, f"{prefix}/#", tmp_path)
    time.sleep(0.5)  # subscribed before the first event
    result = run_cli(
        "--config", config, "--source", SAMPLE_VIDEO, "--max-frames", "120",
        "--output", tmp_path, "--name", "mqtt", "--no-video",
    )  # fmt: skip
    result.assert_ok()
    folder = only_run_folder(tmp_path)
    run = json.loads((folder / "run.json").read_text())
    events = [json.loads(x) for x in (folder / "events.jsonl").read_text().splitlines()]
    assert len(events) > 20 and {"new", "end", "cross"} <= {e["type"] for e in events}
    got = sub.wait_for(
        lambda m: sum(t.endswith("/events") for t, _ in m) >= len(events)
        and (f"{prefix}/vtest/status", "offline") in m
    )
    sub.stop()
    arrived = [json.loads(p) for t, p in got if t == f"{prefix}/vtest/events"]
    assert [e["id"] for e in arrived] == [e["id"] for e in events]  # all, once, in order
    assert arrived == events
    sink = run["events"]["sinks"]["mqtt"]
    assert sink["dropped"] == 0 and sink["acknowledged"] >= len(events)
    # what a late subscriber reads: the final counts, and offline (a clean end)
    kept = retained(broker, f"{prefix}/#")
    assert json.loads(kept[f"{prefix}/vtest/lines/middle"]) == run["events"]["lines"]["middle"]
    assert json.loads(kept[f"{prefix}/vtest/zones/left"]) == run["events"]["zones"]["left"]
    assert kept[f"{prefix}/vtest/status"] == "offline"
    crosses = [e for e in events if e["type"] == "cross"]
    counted = sum(sum(v.values()) for v in run["events"]["lines"]["middle"].values())
    assert len(crosses) == counted > 0


@pytest.mark.e2e
@needs_model
def test_last_will_says_offline_when_the_run_is_killed(tmp_path, broker):
    config, prefix = _config(tmp_path, broker)
    sub = Subscriber(broker, f"{prefix}/+/status", tmp_path)
    run = RunningCli("--config", config, "--source", SAMPLE_VIDEO, "--output", tmp_path)
    try:
        run.wait_for(lambda: (f"{prefix}/vtest/status", "online") in sub.messages(), what="online")
        run.kill()  # SIGKILL: no chance to say goodbye; the broker sends the will
        got = sub.wait_for(lambda m: m[-1:] == [(f"{prefix}/vtest/status", "offline")])
    finally:
        run.kill()
        run.finish()
        sub.stop()
    assert got.count((f"{prefix}/vtest/status", "online")) == 1
    assert retained(broker, f"{prefix}/+/status") == {f"{prefix}/vtest/status": "offline"}


def _event(n: int) -> dict:
    return {"id": f"e{n}", "type": "new", "source": "cam", "track_id": n}


def test_broker_gone_mid_run_and_back(tmp_path, broker):
    prefix = f"t{uuid.uuid4().hex[:8]}"
    sink = MqttSink(MqttSpec(port=broker.port, topic_prefix=prefix, qos=1), "cam")
    try:
        sub = Subscriber(broker, f"{prefix}/cam/events", tmp_path)
        time.sleep(0.5)
        for n in range(20):
            sink.send(_event(n))
        sub.wait_for(lambda m: len(m) >= 20)
        broker.stop()
        t0 = time.perf_counter()
        for n in range(20, 40):  # the pipeline goes on: send only queues
            sink.send(_event(n))
        queued_s = time.perf_counter() - t0
        sub.stop()
        broker.start()
        sub = Subscriber(broker, f"{prefix}/cam/events", tmp_path)
        deadline = time.monotonic() + 30
        while sink.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sink.connects == 2, "the client did not reconnect by itself"
        time.sleep(0.5)
        for n in range(40, 60):
            sink.send(_event(n))
        got = sub.wait_for(lambda m: {f"e{n}" for n in range(40, 60)} <= _ids(m))
    finally:
        sink.close()
        sub.stop()
    assert _ids(got) >= {f"e{n}" for n in range(40, 60)}  # events resume on reconnect
    print(f"20 sends with the broker away took {queued_s * 1e3:.1f} ms")
    assert sink.describe()["dropped"] == 0


def _ids(messages) -> set[str]:
    return {json.loads(p)["id"] for _, p in messages}


def test_a_broker_down_at_start_is_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="detector.events")
    dead = free_port()  # nothing listens there
    sink = MqttSink(MqttSpec(port=dead, topic_prefix="x", qos=1), "squares", drain_s=0.5)
    squares = [Square((0, 0, 255), 3, (22, 10), (5, 0))]
    zone = ZoneSpec("right", ((200, 0), (319, 0), (319, 239), (200, 239)))
    scene = run_scene(tmp_path, squares, 40, [zone], [LineSpec("mid", (160, 0), (160, 239))],
                      sinks=[sink])  # fmt: skip
    sink.close()
    assert len(scene.results) == 40  # every frame went through
    assert scene.sink.of("cross") and scene.sink.of("enter")
    assert f"cannot reach mqtt://127.0.0.1:{dead}" in caplog.text
    d = sink.describe()
    assert d["connects"] == 0 and d["acknowledged"] == 0
