"""The static revision reader: one test per failure it once had."""

from __future__ import annotations

import logging
import os
import py_compile
from pathlib import Path

import pytest

from tests.support.revision_trees import (
    alembic_pending,
    alembic_script,
    reader,
    revision_source,
    write_project,
)

V = "migrations/versions"


def _chain(extra: str = "", target: str = "b") -> dict[str, str]:
    """a <- b <- c, with `extra` appended to revision `target`."""
    return {
        f"{V}/a_.py": revision_source("a1a1", None, extra=extra if target == "a" else ""),
        f"{V}/b_.py": revision_source("b2b2", "a1a1", extra=extra if target == "b" else ""),
        f"{V}/c_.py": revision_source("c3c3", "b2b2", extra=extra if target == "c" else ""),
    }


def _steps_aside(tmp_path: Path, files: dict[str, str], ini: str = "") -> None:
    path = write_project(tmp_path, files, ini)
    assert reader(path) is None


@pytest.mark.parametrize(
    "extra",
    [
        "if True:\n    down_revision = 'a1a1'",
        "try:\n    import json\nexcept ImportError:\n    down_revision = 'a1a1'",
        "for _ in []:\n    down_revision = 'a1a1'",
        "with open(__file__):\n    down_revision = 'a1a1'",
        "globals()['down_revision'] = 'a1a1'",
        "(down_revision := 'a1a1')",
        "down_revision, other = 'a1a1', 1",
        "other = down_revision = 'a1a1'",
        "from os import sep as down_revision",
        "del branch_labels",
        "revision += 'x'",
        "depends_on: str",
    ],
)
def test_a_literal_rebound_later_steps_aside(tmp_path: Path, extra: str) -> None:
    """A top-level literal rebound by any statement form makes the reader step aside."""
    _steps_aside(tmp_path, _chain(extra))


def test_rebinding_in_a_nested_scope_with_global_steps_aside(tmp_path: Path) -> None:
    """`global revision` inside a function counts as another binding."""
    _steps_aside(tmp_path, _chain("def f():\n    global revision\n    revision = 'x'"))


@pytest.mark.parametrize("extra", ["from os.path import *", "setattr(op, 'x', 1)", "vars()"])
def test_dynamic_binding_forms_step_aside(tmp_path: Path, extra: str) -> None:
    """Star imports, setattr and vars() could rebind anything."""
    _steps_aside(tmp_path, _chain(extra))


def test_several_version_locations_are_all_read(tmp_path: Path) -> None:
    """version_locations split on path_separator: files in both folders make one graph."""
    files = _chain()
    files["other/c_.py"] = files.pop(f"{V}/c_.py")
    ini = write_project(tmp_path, files, "version_locations = %(here)s/migrations/versions:other")
    graph = reader(ini)
    assert graph is not None and graph.heads == ("c3c3",)


def test_recursive_version_locations_reads_subfolders(tmp_path: Path) -> None:
    """recursive_version_locations = true takes files in subfolders; false ignores them."""
    files = _chain()
    files[f"{V}/sub/c_.py"] = files.pop(f"{V}/c_.py")
    graph = reader(write_project(tmp_path, files, "recursive_version_locations = true"))
    assert graph is not None and graph.heads == ("c3c3",)
    graph = reader(write_project(tmp_path, files, "recursive_version_locations = false"))
    assert graph is not None and graph.heads == ("b2b2",)


def test_sourceless_compiled_revision_steps_aside(tmp_path: Path) -> None:
    """sourceless = true with a .pyc in __pycache__ and no source: Alembic loads it, we cannot."""
    ini = write_project(tmp_path, _chain(), "sourceless = true")
    source = tmp_path / V / "c_.py"
    py_compile.compile(str(source), cfile=str(tmp_path / V / "__pycache__" / "c_.cpython-311.pyc"))
    source.unlink()
    assert reader(ini) is None


def test_symlink_is_filtered_by_its_resolved_name(tmp_path: Path) -> None:
    """Alembic matches the resolved name: a .py link to a .txt file is not a revision."""
    files = _chain()
    files[f"{V}/c_.txt"] = files.pop(f"{V}/c_.py")
    ini = write_project(tmp_path, files)
    os.symlink(tmp_path / V / "c_.txt", tmp_path / V / "z_.py")
    graph = reader(ini)
    assert graph is not None and graph.heads == ("b2b2",)


def test_symlink_to_a_file_of_the_same_folder_is_read_once(tmp_path: Path) -> None:
    """A second name for the same file is skipped, as Alembic skips it."""
    ini = write_project(tmp_path, _chain())
    os.symlink(tmp_path / V / "c_.py", tmp_path / V / "d_.py")
    graph = reader(ini)
    assert graph is not None and graph.heads == ("c3c3",)


def test_script_location_elsewhere_is_followed(tmp_path: Path) -> None:
    """script_location outside the default place: its versions/ folder is read."""
    files = {f"db/alembic/versions/{name[len(V) + 1 :]}": src for name, src in _chain().items()}
    ini = write_project(tmp_path, files)
    ini.write_text("[alembic]\nscript_location = db/alembic\n")
    graph = reader(ini)
    assert graph is not None and graph.heads == ("c3c3",)


def test_cycle_beside_a_clean_chain_steps_aside(tmp_path: Path) -> None:
    """Two revisions naming each other next to a clean chain: Alembic refuses, so do we."""
    files = _chain()
    files[f"{V}/x_.py"] = revision_source("x1x1", "y1y1")
    files[f"{V}/y_.py"] = revision_source("y1y1", "x1x1")
    _steps_aside(tmp_path, files)


def test_self_loop_steps_aside(tmp_path: Path) -> None:
    """A revision that revises itself."""
    files = _chain()
    files[f"{V}/x_.py"] = revision_source("x1x1", "x1x1")
    _steps_aside(tmp_path, files)


@pytest.mark.parametrize("bad", ["c-3", "c@3", "c+3", "c:3"])
def test_ids_with_illegal_characters_step_aside(tmp_path: Path, bad: str) -> None:
    """Alembic refuses ids containing - @ + :."""
    files = _chain()
    files[f"{V}/c_.py"] = revision_source(bad, "b2b2")
    _steps_aside(tmp_path, files)


def test_depends_on_a_missing_revision_steps_aside(tmp_path: Path) -> None:
    """depends_on naming no revision or label."""
    files = _chain()
    files[f"{V}/c_.py"] = revision_source("c3c3", "b2b2", depends_on="nope")
    _steps_aside(tmp_path, files)


def test_branch_label_equal_to_an_id_steps_aside(tmp_path: Path) -> None:
    """A branch label that is also a revision id."""
    files = _chain()
    files[f"{V}/c_.py"] = revision_source("c3c3", "b2b2", labels="a1a1")
    _steps_aside(tmp_path, files)


def test_missing_down_revision_steps_aside_even_with_an_id_named_missing(tmp_path: Path) -> None:
    """No down_revision at all (Alembic raises) is not mistaken for a revision named 'missing'."""
    files = {
        f"{V}/m_.py": revision_source("missing", None),
        f"{V}/n_.py": revision_source("n1n1", "missing").replace("down_revision:", "_unused:"),
    }
    _steps_aside(tmp_path, files)


def test_failing_top_level_import_steps_aside(tmp_path: Path) -> None:
    """A module that cannot be imported makes Alembic fail: step aside."""
    _steps_aside(tmp_path, _chain("import no_such_module_anywhere"))


@pytest.mark.parametrize("value", ["{[]}", "-" * 100000 + "1", "[" * 100000 + "]" * 100000])
def test_pathological_values_step_aside_without_raising(tmp_path: Path, value: str) -> None:
    """TypeError, RecursionError or MemoryError while reading: None, never an exception."""
    files = _chain()
    files[f"{V}/c_.py"] = revision_source("c3c3", "b2b2").replace("'b2b2'", value)
    _steps_aside(tmp_path, files)


def _merge_tree() -> dict[str, str]:
    """a <- b, a <- c, (b, c) <- d <- e."""
    return {
        f"{V}/a_.py": revision_source("a1a1", None),
        f"{V}/b_.py": revision_source("b2b2", "a1a1"),
        f"{V}/c_.py": revision_source("c3c3", "a1a1"),
        f"{V}/d_.py": revision_source("d4d4", ("b2b2", "c3c3")),
        f"{V}/e_.py": revision_source("e5e5", "d4d4"),
    }


def test_pending_follows_merges_for_every_position(tmp_path: Path) -> None:
    """Behind a merge, pending() answers and matches `alembic upgrade heads`."""
    ini = write_project(tmp_path, _merge_tree())
    graph, script = reader(ini), alembic_script(ini)
    assert graph is not None and script is not None
    for current in [(), ("a1a1",), ("b2b2",), ("c3c3",), ("b2b2", "c3c3"), ("d4d4",), ("e5e5",)]:
        pending = graph.pending(current)
        assert pending is not None
        assert [r.id for r in pending] == alembic_pending(script, current)


def test_legacy_id_comes_from_the_file_name(tmp_path: Path) -> None:
    """A file without `revision` takes its id from a hex file name, as Alembic does."""
    legacy = revision_source("x", None).replace("revision: str = 'x'\n", "")
    files = {f"{V}/ab12.py": legacy, f"{V}/c_.py": revision_source("c3c3", "ab12")}
    graph = reader(write_project(tmp_path, files))
    assert graph is not None and graph.heads == ("c3c3",)
    assert [r.id for r in graph.chain()] == ["ab12", "c3c3"]


def test_unknown_database_revision_is_unsure(tmp_path: Path) -> None:
    """The database knows an id the code does not (ahead, or diverged): None."""
    graph = reader(write_project(tmp_path, _chain()))
    assert graph is not None and graph.pending(("f00d",)) is None


def test_message_is_the_first_paragraph_of_the_docstring(tmp_path: Path) -> None:
    """Revision.message is Alembic's Script.doc."""
    graph = reader(write_project(tmp_path, _chain()))
    assert graph is not None
    revision = graph.revisions.get("c3c3")
    assert revision is not None and revision.message == "a revision"


def test_stepping_aside_is_logged_once_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One record on the launcher's log naming the reason, the file and the line."""
    # The launcher's root logger stops propagation once configured (by an earlier test in
    # this process, say): let the records reach caplog's handler.
    monkeypatch.setattr(logging.getLogger("alembic_prestart"), "propagate", True)
    caplog.set_level(logging.INFO, logger="alembic_prestart.revisions")
    _steps_aside(tmp_path, _chain("if True:\n    down_revision = 'a1a1'"))
    records = [r for r in caplog.records if r.name == "alembic_prestart.revisions"]
    assert len(records) == 1
    assert "b_.py:15" in records[0].getMessage()
    assert "down_revision" in records[0].getMessage()
