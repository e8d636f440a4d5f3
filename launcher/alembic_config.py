"""Where Alembic finds the migrations, read from its configuration as Alembic reads it."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path


class AlembicConfigError(Exception):
    """The Alembic configuration cannot be used; the message is one line."""


@dataclass(frozen=True)
class AlembicConfig:
    path: Path
    root: Path
    script_location: Path
    version_locations: tuple[Path, ...]
    recursive_version_locations: bool
    sourceless: bool
    unmodelled: str | None


def load_alembic_config(path: Path) -> AlembicConfig:
    path = path.absolute()
    if not path.is_file():
        raise AlembicConfigError(f"{path} is missing")
    parser = configparser.ConfigParser(defaults={"here": str(path.parent)})
    try:
        parser.read(path, encoding="utf-8")
        location = parser.get("alembic", "script_location", fallback=None)
    except (configparser.Error, UnicodeDecodeError) as error:
        raise AlembicConfigError(f"{path} is malformed: {str(error).splitlines()[0]}") from None
    if not location:
        raise AlembicConfigError(f"{path} has no [alembic] script_location")
    script_location = (path.parent / location).resolve()
    return AlembicConfig(
        path=path,
        root=path.parent,
        script_location=script_location,
        version_locations=(script_location / "versions",),
        recursive_version_locations=False,
        sourceless=False,
        unmodelled=None,
    )
