"""Reading the project's YAML data files with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ivr.errors import ConfigError


def read_yaml(path: Path, what: str = "file") -> Any:
    """The parsed document; a missing or malformed file is a ConfigError naming it."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
