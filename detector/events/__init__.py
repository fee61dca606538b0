"""Act on what is seen: filters, zones and lines on tracked objects, events and their sinks.

The parts, one job per module: ``spec`` (the config values), ``filters`` (per-class
thresholds, box area, ignore masks), ``zones`` (supervision's ``PolygonZone`` / ``LineZone``
with inertia, loitering and per-class counts), ``lifecycle`` (an object's ``new`` → updates →
``end``), ``stage`` (all of it on each tracked frame), and the sinks: ``jsonl``, ``mqtt``,
``webhook``, ``snapshots``, ``clips``, each behind a bounded queue and a worker thread.
Importing this package is light: supervision, paho-mqtt, httpx and PyAV load when used.
"""
