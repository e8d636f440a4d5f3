"""docs/adopting.md's Procfile, run by honcho on the foreign project as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.foreign.project import BIN, Command, ForeignProject
from tests.foreign.test_foreign_project import _env, _get, _tables
from tests.support.urls import PROJECT_ROOT, DatabaseURL

# Real processes, servers or clusters: left out of the quick run (-m "not slow").
pytestmark = pytest.mark.slow

ADOPTING = PROJECT_ROOT / "docs" / "adopting.md"


def documented_procfile() -> str:
    text = ADOPTING.read_text()
    match = re.search(r"### Procfile[^\n]*\n+```\n(.*?)```", text, re.S)
    assert match, "docs/adopting.md has no Procfile block"
    return match.group(1)


def _honcho(foreign: ForeignProject, url: str, log: Path, *args: str) -> Command:
    env = _env(url, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    (log.parent / "empty.env").touch()  # a developer's .env must not change the run
    files = ["-f", str(foreign.root / "Procfile"), "-d", str(foreign.root)]
    argv = [str(BIN / "honcho"), *files, "-e", str(log.parent / "empty.env"), "--no-colour"]
    return Command([*argv, "start", *args], env=env, cwd=foreign.root, log_path=log)


def test_documented_procfile_releases_then_serves(
    foreign: ForeignProject, postgres_url: DatabaseURL, tmp_path: Path, port: int
) -> None:
    """`release:` migrates the foreign project; `web:` serves it on honcho's PORT."""
    (foreign.root / "Procfile").write_text(documented_procfile())
    release = _honcho(foreign, postgres_url.url, tmp_path / "release.out", "release")
    assert release.wait() == 0, release.output
    assert set(foreign.tables) <= _tables(foreign, postgres_url.url)
    web = _honcho(foreign, postgres_url.url, tmp_path / "web.out", "-p", str(port), "web")
    try:
        assert _get(web, port)["database_url"] == postgres_url.url
    finally:
        web.stop()
    assert "migration child skipped" in web.output
