"""--app checked without importing the app (process/app_check.py)."""

from __future__ import annotations

from pathlib import Path

from alembic_prestart.process.app_check import app_problem

ROOT = Path("/srv/app")


def test_app_check(tmp_path: Path) -> None:
    """module:attribute is found statically, or the problem is named; dynamic modules pass."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "web.py").write_text("from x import y as app\n")
    (tmp_path / "pkg" / "lazy.py").write_text("def __getattr__(name):\n    return name\n")
    assert app_problem("pkg.web:app", tmp_path) is None
    assert app_problem("pkg.lazy:anything", tmp_path) is None
    assert "defines no 'apq'" in (app_problem("pkg.web:apq", tmp_path) or "")
    assert "no module 'pkg.wbe'" in (app_problem("pkg.wbe:app", tmp_path) or "")
    assert "module:attribute" in (app_problem("pkg.web", tmp_path) or "")
