"""YAML config → frozen, validated ``Config``: unknown keys get a did-you-mean; overrides apply.

Every key, its default and its meaning is documented in ``detector/default.yml`` (shipped
in the package); the defaults below are the same values (a test keeps them in sync). Relative
paths in a config file resolve against that file's folder; relative paths in overrides
(command-line flags, keywords) against the current directory. A path starting with
``${models}``, ``${samples}`` or ``${runs}`` starts in that folder (:func:`detector.paths.homes`).
Build configs with ``load_config`` (``load_config(None, {...})`` in tests): the section
classes' own defaults are the raw values, relative paths not yet resolved.
"""

from __future__ import annotations

from detector.config.fields import (
    ALIASES,
    DEFAULT_SERVE_HOST,
    DEFAULT_THRESHOLD,
    DETECTION,
    ENGINE,
    EVENTS,
    FLAG_GROUPS,
    LISTS,
    OD_INPUT,
    OD_OUTPUT_NODES,
    OD_OUTPUTS,
    OTHER_FLAGS,
    OUTPUTS,
    RENAMED,
    SOURCE_AND_MODEL,
    Flag,
)
from detector.config.keys import (
    FlaggedKey,
    choices,
    flagged_keys,
    key_field,
    key_for,
    keyword_overrides,
)
from detector.config.load import load_config, parse_address, with_overrides
from detector.config.sections import (
    KEYS,
    SECTIONS,
    Config,
    DetectConfig,
    ModelConfig,
    OutputConfig,
    RunConfig,
    ServeConfig,
    SourceConfig,
)

__all__ = [
    "ALIASES",
    "DEFAULT_SERVE_HOST",
    "DEFAULT_THRESHOLD",
    "DETECTION",
    "ENGINE",
    "EVENTS",
    "FLAG_GROUPS",
    "KEYS",
    "LISTS",
    "OD_INPUT",
    "OD_OUTPUTS",
    "OD_OUTPUT_NODES",
    "OTHER_FLAGS",
    "OUTPUTS",
    "RENAMED",
    "SECTIONS",
    "SOURCE_AND_MODEL",
    "Config",
    "DetectConfig",
    "Flag",
    "FlaggedKey",
    "ModelConfig",
    "OutputConfig",
    "RunConfig",
    "ServeConfig",
    "SourceConfig",
    "choices",
    "flagged_keys",
    "key_field",
    "key_for",
    "keyword_overrides",
    "load_config",
    "parse_address",
    "with_overrides",
]
