"""What every run settles before its engine starts: labels, classes, sources, model options, record.

:func:`prepare` is shared by the local engine (:mod:`detector.pipeline.local`) and the Ray
engine (:mod:`detector.distributed.driver`), so both read the label map, resolve the class
filter, expand a folder of videos, name the run folder, build the one
:class:`~detector.model.options.ModelOptions` and start ``run.json`` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detector.config import Config
from detector.labels import LabelMap, load_label_map
from detector.model.loader import require_model_path
from detector.model.options import ModelOptions
from detector.outputs.record import header
from detector.sources.spec import SourceSpec, expand_sources, parse_source


@dataclass(frozen=True)
class Prelude:
    """A run's settled inputs.

    Attributes:
        config: The validated configuration.
        labels: The label map (empty: ``class N`` labels).
        class_ids: Label-map ids kept (``None``: all).
        specs: Every source, a folder of videos expanded to its videos.
        many: Several sources (a sub-folder each, one summary).
        run_name: The run folder's name (``output.name``, the source's, or ``sources``).
        model: How the model is loaded (built once from ``model.*``).
    """

    config: Config
    labels: LabelMap
    class_ids: frozenset[int] | None
    specs: tuple[SourceSpec, ...]
    many: bool
    run_name: str
    model: ModelOptions

    def header(self, engine: str) -> dict[str, Any]:
        """The start of this run's record (masked when written)."""
        return run_header(self.config, self.labels, self.class_ids, engine)


def run_header(
    config: Config, labels: LabelMap, class_ids: frozenset[int] | None, engine: str = "local"
) -> dict[str, Any]:
    """The start of a run's (or a source's) record: config, labels, class filter, engine."""
    return header(
        engine=engine,
        config=config.to_dict(),
        config_file=config.path,
        labels_path=config.model.labels,
        label_count=len(labels),
        class_ids=class_ids,
    )


def prepare(config: Config) -> Prelude:
    """Settle the run's inputs (no file is written, nothing is opened but the label map).

    Raises:
        ModelError: The model path does not exist (exit 1).
        LabelMapError: The label map cannot be read (exit 1).
        ConfigError: A class in ``detect.classes`` is not in the label map (exit 2).
    """
    options = ModelOptions.from_config(config)
    require_model_path(options.path)
    labels = load_label_map(options.labels) if options.labels is not None else LabelMap({})
    class_ids = labels.resolve_classes(config.detect.classes)
    uris = config.source.uris
    specs = tuple(expand_sources(uris))
    many = len(specs) > 1 or len(uris) > 1 or specs[0].uri != str(uris[0]).strip()
    if config.output.name:
        name = config.output.name
    elif not many:
        name = specs[0].run_name
    else:  # a folder of videos: the folder's name; several sources: "sources"
        name = parse_source(uris[0]).run_name if len(uris) == 1 else "sources"
    return Prelude(config, labels, class_ids, specs, many, name, options)


def model_entry(
    options: ModelOptions, model: Any = None, warmup_ms: float | None = None
) -> dict[str, Any]:
    """The record's ``model``: what was asked, and what the loaded ``model`` (if any) used."""
    entry: dict[str, Any] = {
        "path": str(options.path),
        "backend": options.backend,
        "device": options.device,
        "precision": options.precision,
        "workers": options.workers,
        "intra_op_threads": options.intra_op_threads,
    }
    if model is not None:
        entry.update(
            path=str(model.path),
            backend=getattr(model, "backend", options.backend),
            format=model.format,
            device=model.device,
            precision=model.precision,
            load_s=round(model.load_s, 3),
        )
    if warmup_ms is not None:
        entry["warmup_ms"] = round(warmup_ms, 3)
    choice = getattr(model, "backend_choice", None)
    if choice is not None:  # why this backend: backend auto's decision, or the config's
        entry["backend_choice"] = choice.to_dict()
    return entry
