"""Read the options of Alembic's configuration that decide which revision files it loads.

Mirrors `alembic.config.Config` as the launcher's child runs it: `python -m alembic -c <path>
upgrade head` with cwd = the config file's folder. The CLI reads an ini file *and* the
`[tool.alembic]` table of a pyproject.toml (the one it was not given defaults to a name in the
cwd, or to `$ALEMBIC_CONFIG`); an ini option wins over the same toml option. Anything read here
that the static revision reader does not model exactly is recorded in `unmodelled`.
"""

from __future__ import annotations

import configparser
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_SECTION = "alembic"
# alembic.config.Config._get_file_separator_char
_SEPARATORS = {"space": " ", "newline": "\n", "os": os.pathsep, ":": ":", ";": ";"}
# The legacy splitting Alembic falls back to when no path_separator is set.
_LEGACY_SPLIT = re.compile(r", *|(?: +)")
_LEGACY_SYS_PATH_SPLIT = re.compile(r", *|(?: +)|\:")


class AlembicConfigError(Exception):
    """The configuration Alembic would refuse; the message is one user-facing line."""


class _Unmodelled(Exception):
    """An option Alembic accepts but the static reader does not model."""


@dataclass(frozen=True)
class AlembicConfig:
    path: Path
    root: Path
    script_location: Path
    version_locations: tuple[Path, ...]
    recursive_version_locations: bool
    sourceless: bool
    unmodelled: str | None
    prepend_sys_path: tuple[Path, ...] = ()
    script_location_is_resource: bool = False  # `pkg:path`: Alembic finds it, not a folder here


def load_alembic_config(path: Path) -> AlembicConfig:
    """The options Alembic's CLI would use with `-c path`, run from path's folder."""
    path = path.absolute()
    root = path.parent
    if not path.is_file():
        raise AlembicConfigError(f"alembic config file not found: {path}")
    env = os.environ.get("ALEMBIC_CONFIG")
    env_is_toml = env is not None and os.path.basename(env) == "pyproject.toml"
    if path.name == "pyproject.toml":
        toml_path = path
        ini_path = root / (env if env and not env_is_toml else "alembic.ini")
    else:
        ini_path = path
        toml_path = root / (env if env and env_is_toml else "pyproject.toml")
    try:
        return _Options(root, ini_path, toml_path).config(path)
    except AlembicConfigError:
        raise
    except (configparser.Error, tomllib.TOMLDecodeError, OSError, UnicodeError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise AlembicConfigError(f"cannot read the alembic config {path}: {reason}") from error


class _Options:
    """`Config.get_alembic_option` and friends, over the same two files."""

    def __init__(self, root: Path, ini_path: Path, toml_path: Path) -> None:
        self.root = root
        self.ini = configparser.ConfigParser({"here": ini_path.parent.as_posix()})
        self.ini.read([ini_path], encoding="locale")  # a missing file is skipped, as Alembic does
        self.toml: Mapping[str, object] = {}
        self.toml_here = toml_path.parent.as_posix()
        if toml_path.exists():
            with open(toml_path, "rb") as file:
                tool = tomllib.load(file).get("tool", {})
            table = tool.get("alembic", {}) if isinstance(tool, dict) else {}
            if not isinstance(table, dict):
                raise AlembicConfigError(f"[tool.alembic] in {toml_path} is not a table")
            self.toml = table

    def config(self, path: Path) -> AlembicConfig:
        unmodelled: list[str] = []
        location = self.option("script_location")
        if location is None:
            raise AlembicConfigError(f"no script_location in the alembic config {path}")
        if not isinstance(location, str):
            raise AlembicConfigError(f"script_location in {path} is not a string")
        script_location = self.root / location
        if _is_resource(location):
            unmodelled.append(f"script_location {location!r} is a package resource")
        elif not os.access(script_location, os.F_OK):
            unmodelled.append(f"script_location {script_location} does not exist")
        versions = self.version_locations(unmodelled)
        return AlembicConfig(
            path=path,
            root=self.root,
            script_location=script_location,
            version_locations=versions or (script_location / "versions",),
            recursive_version_locations=self.boolean("recursive_version_locations"),
            sourceless=self.boolean("sourceless"),
            unmodelled="; ".join(unmodelled) or None,
            script_location_is_resource=_is_resource(location),
            prepend_sys_path=self.prepend_sys_path(),
        )

    def option(self, name: str) -> object:
        if self.ini.has_option(_SECTION, name):
            return self.ini.get(_SECTION, name)
        if name not in self.toml:
            return None
        return self._toml_value(name)

    def _toml_value(self, name: str) -> object:
        value = self.toml[name]
        try:
            if isinstance(value, str):
                return value % {"here": self.toml_here}
            if isinstance(value, list) and all(isinstance(item, str) for item in value):
                return [item % {"here": self.toml_here} for item in value]
        except (ValueError, TypeError, KeyError) as error:
            raise AlembicConfigError(f"[tool.alembic] {name}: bad % substitution") from error
        return value

    def boolean(self, name: str) -> bool:
        if self.ini.has_option(_SECTION, name):
            return self.ini.get(_SECTION, name) == "true"  # Alembic compares exactly
        value = self.toml.get(name, False)
        if not isinstance(value, bool):
            raise AlembicConfigError(f"[tool.alembic] {name} must be a boolean")
        return value

    def _split(
        self, name: str, separator_names: tuple[str, ...], legacy: re.Pattern[str]
    ) -> list[str] | None:
        """`Config.get_version_locations_list` / `get_prepend_sys_paths_list`."""
        text = self.ini.get(_SECTION, name, fallback=None)
        if not text:
            value = self._toml_value(name) if name in self.toml else None
            if value is None:
                return None
            if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise _Unmodelled(f"[tool.alembic] {name} is not a list of strings")
            return list(value)
        for separator_name in separator_names:
            separator = self.ini.get(_SECTION, separator_name, fallback=None)
            if separator is not None:
                break
        else:
            return legacy.split(text)
        if separator not in _SEPARATORS:
            raise AlembicConfigError(f"{separator!r} is not a valid {separator_name}")
        return [item.strip() for item in text.split(_SEPARATORS[separator]) if item]

    def version_locations(self, unmodelled: list[str]) -> tuple[Path, ...]:
        names = ("path_separator", "version_path_separator")
        try:
            locations = self._split("version_locations", names, _LEGACY_SPLIT) or []
        except _Unmodelled as reason:
            unmodelled.append(str(reason))
            return ()
        for location in locations:
            if _is_resource(location):
                unmodelled.append(f"version location {location!r} is a package resource")
        return tuple(self.root / location for location in locations)

    def prepend_sys_path(self) -> tuple[Path, ...]:
        try:
            entries = self._split("prepend_sys_path", ("path_separator",), _LEGACY_SYS_PATH_SPLIT)
        except _Unmodelled:
            entries = None  # only used to find modules; an unknown path finds nothing
        return tuple(self.root / entry for entry in entries or [])


def _is_resource(location: str) -> bool:
    # alembic.util.coerce_resource_to_filename: "pkg:path" unless the path is absolute.
    return not os.path.isabs(location) and ":" in location
