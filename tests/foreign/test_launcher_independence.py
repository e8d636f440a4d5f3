"""The launcher knows nothing of the service it was first written for."""

import ast

from tests.support.urls import PROJECT_ROOT

THIS_SERVICE = {"service", "migrations"}


def test_no_launcher_module_imports_the_service_or_its_migrations() -> None:
    """No import under launcher/ (statement or import_module) names `service` or `migrations`."""
    modules = sorted((PROJECT_ROOT / "launcher").rglob("*.py"))
    assert modules
    found = []
    for path in modules:
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif _is_import_module_call(node):  # importlib.import_module("...") by name
                names = [node.args[0].value]  # type: ignore[attr-defined]
            else:
                continue
            found += [
                f"{path.name}:{node.lineno} {name}"
                for name in names
                if name.split(".")[0] in THIS_SERVICE
            ]
    assert found == []


def _is_import_module_call(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )
