"""What a Ray run needs to know: cluster and actor-pool settings, and the model each actor loads.

Both are small frozen dataclasses of plain values, so Ray can ship them to every actor.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.config import DEFAULT_THRESHOLD
from detector.model.options import ModelOptions


@dataclass(frozen=True)
class RayOptions:
    """Where Ray runs and how the work is spread.

    Attributes:
        address: A running cluster's address (``ray://host:10001`` or ``host:6379``, or
            ``auto``); ``None`` starts a local Ray on this machine for the run.
        actors: Actors in the pool, each holding one copy of the model.
        batch_size: Image files handed to an actor per call (videos: one frame range a call).
        cpus_per_actor: CPUs Ray reserves for each actor (TensorFlow's threads follow it).
        gpus_per_actor: GPUs Ray reserves for each actor (0: CPU only; fractions share a GPU).
        ranges_per_video: Frame ranges a video is split into (0: one per actor).
        local_cpus: CPUs a local Ray may use (``None``: all; ignored with ``address``).
    """

    address: str | None = None
    actors: int = 2
    batch_size: int = 8
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    ranges_per_video: int = 0
    local_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise ValueError(f"actors must be at least 1; got {self.actors}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {self.batch_size}")
        if self.cpus_per_actor < 0 or self.gpus_per_actor < 0:
            raise ValueError("cpus_per_actor and gpus_per_actor must not be negative")
        if self.ranges_per_video < 0:
            raise ValueError(f"ranges_per_video must not be negative; got {self.ranges_per_video}")

    @property
    def video_ranges(self) -> int:
        """How many ranges a video is cut into."""
        return self.ranges_per_video or self.actors


@dataclass(frozen=True)
class ModelSpec:
    """How every actor loads the model and filters detections (the app's own settings).

    Attributes:
        model: The run's model options (:meth:`ModelOptions.on_actor`: one worker, threads
            per reserved CPU); the path must be readable by every actor (a shared file
            system, or the same files on each machine).
        threshold: Minimum score kept.
        class_ids: Label-map ids kept (``None``: all).
        max_boxes: Most detections kept per image.
        warmup_runs: Model runs on a blank frame when the actor starts.
        detect_every: Videos: run the model on frames ``0, N, 2N, ...`` of each range
            (ranges start on multiples of N), carry the boxes between.
    """

    model: ModelOptions
    threshold: float = DEFAULT_THRESHOLD
    class_ids: frozenset[int] | None = None
    max_boxes: int | None = 100
    warmup_runs: int = 1
    detect_every: int = 1
