"""Find the revision files Alembic would load, and read each one without running it.

A file is read only when running it could do nothing but bind its names: every top-level
statement is a docstring, an import that resolves, a literal assignment or a plain `def`, and
`revision`, `down_revision`, `branch_labels`, `depends_on` are each bound once, at top level, to
a literal, and nowhere else. Anything else raises StepAside, naming the file and line.
"""

from __future__ import annotations

import ast
import builtins
import importlib.machinery
import os
import re
import sys
import typing
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from alembic_prestart.revisions.config import AlembicConfig

# alembic.script.base: the names Alembic loads, and the legacy id taken from a file name.
_SOURCE_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")
_SOURCELESS_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)(c|o)?$")
_LEGACY_ID = re.compile(r"([a-f0-9]+)\.py$")

IDENTIFIERS = ("revision", "down_revision", "branch_labels", "depends_on")
# Names whose use could rebind a module global behind the parser's back.
_DYNAMIC_NAMES = frozenset(
    {"globals", "vars", "locals", "setattr", "delattr", "exec", "eval", "compile"}
    | {"__import__", "__builtins__", "__dict__", "__setattr__", "modules", "importlib"}
)
_TYPE_MODULES = ("typing", "collections.abc")
# What `Union[str, Sequence[str], None]` or `str | None` is made of: safe to evaluate.
_TYPE_NODES: tuple[type[ast.AST], ...] = (ast.Name, ast.Constant, ast.Subscript, ast.Tuple)
_TYPE_NODES += (ast.List, ast.BinOp, ast.BitOr, ast.Load)


class StepAside(Exception):
    def __init__(self, reason: str, path: Path | None = None, line: int | None = None) -> None:
        super().__init__(reason)
        self.reason, self.path, self.line = reason, path, line

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path or "")
        return f"{self.reason} ({where})" if where else self.reason


@dataclass(frozen=True)
class RevisionFile:
    id: str
    down_revision: object  # None, a str, or a tuple/list of str, as written
    branch_labels: object
    depends_on: object
    message: str
    path: Path


def revision_paths(config: AlembicConfig) -> Iterator[Path]:
    """Resolved paths of the files Alembic loads, in its order (ScriptDirectory._load_revisions)."""
    seen: set[Path] = set()
    for location in config.version_locations:
        if not location.exists():
            continue
        for path in _list_py_dir(location, config):
            real = path.resolve()
            if real in seen:
                continue  # Alembic warns and skips a file it already loaded
            seen.add(real)
            pattern = _SOURCELESS_FILE if config.sourceless else _SOURCE_FILE
            match = pattern.match(real.name)
            if not match:
                continue
            if match.re is _SOURCELESS_FILE and match.group(2):
                py_name = match.group(1)
                if (real.parent / py_name).exists() or (
                    match.group(2) == "o" and (real.parent / (py_name + "c")).exists()
                ):
                    continue
                raise StepAside("compiled revision file (sourceless)", real)
            yield real


def _list_py_dir(location: Path, config: AlembicConfig) -> Iterator[Path]:
    for root, dirs, files in os.walk(location):  # os.walk: Alembic's walk on Python 3.11
        folder = Path(root)
        if folder.name.endswith("__pycache__"):
            continue
        for name in sorted(files):
            yield folder / name
        cache = folder / "__pycache__"
        if config.sourceless and cache.exists():
            stems = {name.split(".")[0] for name in files}
            yield from (pyc for pyc in cache.iterdir() if pyc.name.split(".")[0] not in stems)
        if not config.recursive_version_locations:
            break
        dirs.sort()


def read_revision_file(path: Path, search_path: list[str]) -> RevisionFile:
    """The four identifiers and the message of one file, or StepAside."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = path.read_bytes()
        tree = ast.parse(source, filename=str(path))
        compile(tree, str(path), "exec", dont_inherit=True)  # the compiler's own SyntaxErrors
    _refuse_other_bindings(tree, path)
    values = _TopLevel(path, search_path).run(tree)
    if "down_revision" not in values:
        raise StepAside("no down_revision (Alembic raises AttributeError)", path)
    if "revision" in values:
        rev_id = values["revision"]
    else:
        legacy = _LEGACY_ID.match(path.name)
        if legacy is None:
            raise StepAside("no revision and no legacy id in the file name", path)
        rev_id = legacy.group(1)
    if not isinstance(rev_id, str):
        raise StepAside("revision is not a string", path)
    return RevisionFile(
        id=rev_id,
        down_revision=values["down_revision"],
        branch_labels=values.get("branch_labels"),
        depends_on=values.get("depends_on"),
        message=_doc(tree),
        path=path,
    )


def _doc(tree: ast.Module) -> str:
    # alembic.script.base.Script.doc: the first paragraph of the stripped docstring.
    doc = ast.get_docstring(tree, clean=False) or ""
    return re.split("\n\n", doc.strip())[0]


def _refuse_other_bindings(tree: ast.Module, path: Path) -> None:
    """Every binding of the four names except a plain top-level `name = ...` / `name: T = ...`."""
    plain = {
        id(target)
        for node in tree.body
        for target in _plain_targets(node)
        if target.id in IDENTIFIERS
    }
    for node in ast.walk(tree):
        line = getattr(node, "lineno", None)
        bound: list[str] = []
        if isinstance(node, ast.Name):
            if node.id in _DYNAMIC_NAMES:
                raise StepAside(f"uses {node.id}", path, line)
            if not isinstance(node.ctx, ast.Load) and id(node) not in plain:
                bound.append(node.id)
        elif isinstance(node, ast.Attribute) and node.attr in _DYNAMIC_NAMES:
            raise StepAside(f"uses .{node.attr}", path, line)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            bound.extend(node.names)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound.append(node.name)
        elif isinstance(node, ast.arg):
            bound.append(node.arg)
        elif isinstance(node, ast.alias):
            if node.name == "*":
                raise StepAside("star import", path, line)
            bound.append(node.asname or node.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            bound.append(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.append(node.rest)
        for name in bound:
            if name in IDENTIFIERS:
                raise StepAside(f"{name} bound by a {type(node).__name__}", path, line)


def _plain_targets(node: ast.stmt) -> list[ast.Name]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        targets = [node.targets[0]]
    elif isinstance(node, ast.AnnAssign) and node.value is not None:
        targets = [node.target]
    else:
        return []
    return [t for t in targets if isinstance(t, ast.Name)]


class _TopLevel:
    """Walks the module body in order, as the import would run it."""

    def __init__(self, path: Path, search_path: list[str]) -> None:
        self.path = path
        self.search_path = search_path
        self.values: dict[str, object] = {}
        self.bound: dict[str, object] = {}  # names usable in evaluated annotations
        self.rebound: set[str] = set()
        self.lazy_annotations = False

    def run(self, tree: ast.Module) -> dict[str, object]:
        for node in tree.body:
            self.statement(node)
        return self.values

    def fail(self, reason: str, node: ast.AST) -> StepAside:
        return StepAside(reason, self.path, getattr(node, "lineno", None))

    def statement(self, node: ast.stmt) -> None:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            self.import_(node)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            self.assign(node)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(node)
        else:
            raise self.fail(f"top-level {type(node).__name__} statement", node)

    def bind(self, name: str, value: object) -> None:
        if name in self.bound or name in self.rebound:
            self.bound.pop(name, None)
            self.rebound.add(name)
        else:
            self.bound[name] = value

    def assign(self, node: ast.Assign | ast.AnnAssign) -> None:
        targets = _plain_targets(node)
        if not targets or node.value is None:
            raise self.fail("an assignment that is not `name = literal`", node)
        if isinstance(node, ast.AnnAssign):
            self.annotation(node.annotation)
        try:
            value = ast.literal_eval(node.value)
        except Exception as error:  # TypeError for `{[]}`, RecursionError when deep
            raise self.fail(f"{targets[0].id} is not a literal", node) from error
        name = targets[0].id
        if name in IDENTIFIERS:
            if name in self.values:
                raise self.fail(f"{name} bound twice", node)
            self.values[name] = value
        self.bind(name, None)

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.decorator_list:
            raise self.fail("a decorated function", node)
        arguments = node.args
        for default in [*arguments.defaults, *arguments.kw_defaults]:
            if default is not None:
                try:
                    ast.literal_eval(default)
                except Exception as error:
                    raise self.fail("a default that is not a literal", default) from error
        every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
        every += [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
        for annotation in [a.annotation for a in every] + [node.returns]:
            if annotation is not None:
                self.annotation(annotation)
        self.bind(node.name, None)

    def annotation(self, node: ast.expr) -> None:
        """Evaluate it as the import would, when only typing names and builtins appear."""
        if self.lazy_annotations:
            return
        if not all(isinstance(child, _TYPE_NODES) for child in ast.walk(node)):
            raise self.fail("an annotation that is not a plain type", node)
        namespace: dict[str, object] = {"__builtins__": {}}
        for child in ast.walk(node):
            if isinstance(child, ast.Name):
                if child.id in self.bound and self.bound[child.id] is not None:
                    namespace[child.id] = self.bound[child.id]
                elif child.id in self.bound or child.id in self.rebound:
                    raise self.fail(f"annotation uses {child.id}", child)
                elif isinstance(getattr(builtins, child.id, None), type):
                    namespace[child.id] = getattr(builtins, child.id)
                else:
                    raise self.fail(f"annotation uses unknown {child.id}", child)
        try:
            eval(compile(ast.Expression(node), str(self.path), "eval"), namespace)
        except Exception as error:
            raise self.fail(f"annotation fails: {error}", node) from error

    def import_(self, node: ast.Import | ast.ImportFrom) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not self.resolves(alias.name):
                    raise self.fail(f"import of {alias.name} may fail", node)
                self.bind(alias.asname or alias.name.split(".")[0], None)
            return
        module = node.module or ""
        if node.level:
            raise self.fail("relative import (the revision is not in a package)", node)
        if module == "__future__":
            self.lazy_annotations |= any(a.name == "annotations" for a in node.names)
            return  # compile() has already refused unknown features
        if not self.resolves(module):
            raise self.fail(f"import from {module} may fail", node)
        loaded = sys.modules.get(module)
        for alias in node.names:
            if loaded is not None and hasattr(loaded, alias.name):
                value = getattr(loaded, alias.name) if module in _TYPE_MODULES else None
            elif self.resolves(f"{module}.{alias.name}"):
                value = None
            else:
                raise self.fail(f"cannot tell that {module}.{alias.name} exists", node)
            self.bind(alias.asname or alias.name, value)

    def resolves(self, dotted: str) -> bool:
        """Whether the module is found on the child's path, without running anything."""
        parts = dotted.split(".")
        if parts[0] in sys.builtin_module_names:
            return len(parts) == 1
        if importlib.machinery.FrozenImporter.find_spec(parts[0]) is not None:
            return len(parts) == 1 or parts[0] in sys.modules
        locations: list[str] | None = self.search_path
        for depth in range(len(parts)):
            if locations is None:
                return False
            name = ".".join(parts[: depth + 1])
            spec = importlib.machinery.PathFinder.find_spec(name, locations)
            if spec is None:
                return False
            found = spec.submodule_search_locations
            locations = list(found) if found is not None else None
        return True


_ = typing  # imported so that `from typing import ...` is answered from sys.modules
