"""load_alembic_config reads what Alembic's CLI reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic_prestart.revisions.config import AlembicConfigError, load_alembic_config

from tests.support.revision_trees import cwd


def _alembic_locations(path: Path) -> list[Path]:
    ini, toml = path.parent / "alembic.ini", path.parent / "pyproject.toml"
    with cwd(path.parent):
        script = ScriptDirectory.from_config(Config(str(ini), toml_file=str(toml)))
        return list(script._version_locations)


def test_here_and_several_version_locations_match_alembic(tmp_path: Path) -> None:
    """%(here)s, path_separator and relative locations resolve as Alembic resolves them."""
    (tmp_path / "migrations").mkdir()
    ini = tmp_path / "alembic.ini"
    ini.write_text(
        "[alembic]\nscript_location = %(here)s/migrations\npath_separator = ;\n"
        "version_locations = %(here)s/a; b ;c\nsourceless = true\n"
    )
    config = load_alembic_config(ini)
    assert list(config.version_locations) == _alembic_locations(ini)
    assert config.sourceless and not config.recursive_version_locations
    assert config.unmodelled is None


def test_pyproject_tool_alembic_is_read(tmp_path: Path) -> None:
    """[tool.alembic] in pyproject.toml, with %(here)s, as Alembic 1.16+ reads it."""
    (tmp_path / "m").mkdir()
    toml = tmp_path / "pyproject.toml"
    toml.write_text(
        '[tool.alembic]\nscript_location = "%(here)s/m"\n'
        'version_locations = ["%(here)s/v1", "v2"]\nrecursive_version_locations = true\n'
    )
    config = load_alembic_config(toml)
    assert config.script_location == tmp_path / "m"
    assert list(config.version_locations) == _alembic_locations(toml)
    assert config.recursive_version_locations


def test_pyproject_fills_options_the_ini_lacks(tmp_path: Path) -> None:
    """The CLI reads ./pyproject.toml beside the ini: its version_locations apply."""
    (tmp_path / "m").mkdir()
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = m\n")
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\nversion_locations = ["x"]\n')
    config = load_alembic_config(tmp_path / "alembic.ini")
    assert config.version_locations == (tmp_path / "x",)


def test_package_resource_script_location_is_unmodelled(tmp_path: Path) -> None:
    """`pkg:path` is valid for Alembic but not modelled: the reader must step aside."""
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = mypkg:migrations\n")
    assert load_alembic_config(tmp_path / "alembic.ini").unmodelled is not None


@pytest.mark.parametrize(
    "text",
    [
        None,
        "[alembic]\nsourceless = true\n",
        "not an ini",
        "[alembic]\nscript_location = %(nope)s\n",
    ],
)
def test_unusable_config_is_an_error(tmp_path: Path, text: str | None) -> None:
    """Missing file, no script_location, or a malformed ini: AlembicConfigError."""
    ini = tmp_path / "alembic.ini"
    if text is not None:
        ini.write_text(text)
    with pytest.raises(AlembicConfigError):
        load_alembic_config(ini)
