"""Read the revision graph from migrations/versions/ statically, without importing anything.

The fast path of `serve` and the `check` command use it to compare the code's head with the
database's version. It answers only when it is sure; any doubt returns None and the caller asks
Alembic itself, in a child.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from launcher.alembic_config import AlembicConfig

# The files Alembic itself loads as revisions (alembic.script.base._only_source_rev_file).
_REVISION_FILE = re.compile(r"(?!\.\#|__init__)(.*\.py)$")


@dataclass(frozen=True)
class Revision:
    id: str
    message: str = ""


@dataclass(frozen=True)
class RevisionGraph:
    down_revisions: dict[str, tuple[str, ...]]  # revision -> the revisions it revises

    @property
    def heads(self) -> tuple[str, ...]:
        revised = {down for downs in self.down_revisions.values() for down in downs}
        return tuple(sorted(set(self.down_revisions) - revised))

    def pending(self, current: tuple[str, ...]) -> list[Revision] | None:
        ids = self._pending(current)
        return None if ids is None else [Revision(rev) for rev in ids]

    def _pending(self, current: tuple[str, ...]) -> list[str] | None:
        """Revisions between `current` and the single head, oldest first; None if unsure."""
        heads = self.heads
        if len(heads) != 1 or len(current) > 1:
            return None
        if current and current[0] not in self.down_revisions:
            return None  # the database knows a revision the code does not
        applied = self._ancestors_inclusive(current[0]) if current else set()
        path: list[str] = []
        revision: str | None = heads[0]
        while revision is not None and revision not in applied:
            downs = self.down_revisions[revision]
            if len(downs) > 1:
                return None  # a merge point: leave the ordering to Alembic
            path.append(revision)
            revision = downs[0] if downs else None
        if current and revision is None:
            return None  # current is not an ancestor of head: a branch Alembic must judge
        return list(reversed(path))

    def chain(self) -> list[Revision]:
        return [Revision(revision) for revision in sorted(self.down_revisions)]

    def _ancestors_inclusive(self, revision: str) -> set[str]:
        seen: set[str] = set()
        stack = [revision]
        while stack:
            item = stack.pop()
            if item in seen or item not in self.down_revisions:
                continue
            seen.add(item)
            stack.extend(self.down_revisions[item])
        return seen


def read_revision_graph(config: AlembicConfig) -> RevisionGraph | None:
    """The graph of every revision file, or None if any file cannot be read statically."""
    versions_dir = config.version_locations[0]
    graph: dict[str, tuple[str, ...]] = {}
    try:
        names = sorted(p.name for p in versions_dir.iterdir() if p.is_file())
    except OSError:
        return None
    for name in names:
        if not _REVISION_FILE.fullmatch(name):
            continue
        parsed = _read_revision_file(versions_dir / name)
        if parsed is None:
            return None
        revision, down = parsed
        if revision in graph:
            return None  # duplicate ids: Alembic will complain, let it
        graph[revision] = down
    if not graph:
        return None
    if any(down not in graph for downs in graph.values() for down in downs):
        return None
    return RevisionGraph(graph)


def _read_revision_file(path: Path) -> tuple[str, tuple[str, ...]] | None:
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError):
        return None
    values: dict[str, object] = {}
    for node in tree.body:
        target, value = _module_assignment(node)
        if target in ("revision", "down_revision"):
            try:
                values[target] = ast.literal_eval(value)
            except ValueError:
                return None  # computed, not a literal: only Alembic can tell
    revision = values.get("revision")
    down = values.get("down_revision", "missing")
    if not isinstance(revision, str) or not revision:
        return None
    if down is None:
        return revision, ()
    if isinstance(down, str):
        return revision, (down,)
    if isinstance(down, tuple | list) and down and all(isinstance(d, str) for d in down):
        return revision, tuple(down)
    return None


def _module_assignment(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Name):
            return target.id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
        return node.target.id, node.value
    return None, None
