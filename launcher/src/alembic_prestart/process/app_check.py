"""Find the ASGI app named by --app before anything migrates, without importing it.

Importing the app would run its module-level code (and cost its imports) in the launcher; so the
module is found where uvicorn will look for it (the project root first, as `--app-dir` puts it,
then the installed packages) and its source is parsed for a top-level binding of the attribute.
Anything this cannot judge (a compiled module, an attribute made dynamically) is left to uvicorn.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path


def app_problem(app: str, root: Path) -> str | None:
    """Why `module:attribute` cannot be what uvicorn loads, or None when it may be."""
    module, colon, attribute = app.partition(":")
    if not colon or not module or not attribute:
        return f"--app {app!r} must be module:attribute, e.g. service.main:app"
    found, source = _module_source(module, root)
    if not found:
        return f"no module {module!r} under {root} nor among the installed packages (--app)"
    if source is None:
        return None  # found, but not as Python source (compiled, a namespace): uvicorn judges
    try:
        tree = ast.parse(source.read_bytes(), filename=str(source))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return None  # uvicorn will say what is wrong with it, in full
    name = attribute.split(".")[0]
    if name in _top_level_names(tree) or _has_dynamic_names(tree):
        return None
    return f"module {module!r} ({source}) defines no {name!r} (--app {app!r})"


def _module_source(module: str, root: Path) -> tuple[bool, Path | None]:
    """(found, its source file if it has one)."""
    relative = Path(*module.split("."))
    for candidate in (root / relative.with_suffix(".py"), root / relative / "__init__.py"):
        if candidate.is_file():
            return True, candidate
    if (root / relative.parts[0]).is_dir() or (root / f"{relative.parts[0]}.py").is_file():
        return False, None  # uvicorn imports from the root first: it hides any installed one
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False, None
    if spec is None:
        return False, None
    if spec.origin and spec.origin.endswith(".py"):
        return True, Path(spec.origin)
    return True, None


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
    return names


def _has_dynamic_names(tree: ast.Module) -> bool:
    """A star import or a module __getattr__ can make any name."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(alias.name == "*" for alias in node.names):
            return True
        if isinstance(node, ast.FunctionDef) and node.name == "__getattr__":
            return True
    return False
