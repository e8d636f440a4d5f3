"""The revision graph, read statically: Alembic's answer or None, never a guess.

The fast path of `serve` and the `check` command use it to compare the code's heads with the
database's version without importing Alembic. `read_revision_graph` returns None (and logs why,
once) wherever Alembic would refuse the tree or the reader cannot prove it reads what Alembic
reads; `RevisionGraph.pending` returns None wherever `alembic upgrade heads` would fail or its
order is not determined by the files. The order follows `RevisionMap._topological_sort`, ported
line by line, because `upgrade` applies revisions in exactly that order.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from alembic_prestart.revisions.config import AlembicConfig
from alembic_prestart.revisions.files import (
    RevisionFile,
    StepAside,
    read_revision_file,
    revision_paths,
)

logger = logging.getLogger("alembic_prestart.revisions")

_ILLEGAL_ID_CHARACTERS = frozenset("@-+:")  # alembic.script.revision._revision_illegal_chars
_SYMBOLIC_NAMES = frozenset({"head", "heads", "base"})  # Alembic resolves these, not a lookup


@dataclass(frozen=True)
class Revision:
    id: str
    down_revisions: tuple[str, ...]
    message: str
    path: Path
    branch_labels: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()  # resolved to revision ids


@dataclass(frozen=True)
class RevisionGraph:
    revisions: dict[str, Revision]  # in Alembic's load order, which breaks ties in its sort
    heads: tuple[str, ...] = field(init=False)
    _ancestors: dict[str, frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ancestors: dict[str, frozenset[str]] = {}
        for rev_id in _dependency_order(self.revisions):
            downs = _all_downs(self.revisions[rev_id])
            ancestors[rev_id] = frozenset(downs).union(*(ancestors[d] for d in downs))
        object.__setattr__(self, "_ancestors", ancestors)
        used = {down for rev in self.revisions.values() for down in _all_downs(rev)}
        object.__setattr__(self, "heads", tuple(sorted(set(self.revisions) - used)))

    def is_ahead(self, current: tuple[str, ...]) -> bool:
        """The database holds revisions, none of which this code knows: a newer release
        migrated it (Alembic itself would refuse to plan from there)."""
        return bool(current) and all(rev_id not in self.revisions for rev_id in current)

    def chain(self) -> list[Revision]:
        """Every revision, base first, in the order `upgrade heads` applies them to an empty db."""
        return self.pending(()) or []

    def pending(self, current: tuple[str, ...]) -> list[Revision] | None:
        """What `alembic upgrade heads` would run from these database heads, in order."""
        if len(set(current)) != len(current) or any(c not in self.revisions for c in current):
            logger.info(
                "static revision reader steps aside: the database is at %s, which it cannot "
                "place in the graph",
                ", ".join(current),
            )
            return None  # unknown ids: the database is ahead, diverged, or holds a prefix
        for rev_id in current:
            if self._ancestors[rev_id].intersection(current):
                return None  # Alembic refuses heads that overlap
        applied = set(current).union(*(self._ancestors[c] for c in current))
        needs = [r for r in self.revisions if r not in applied]
        if any(len(_normalized_deps(self, self.revisions[r])) > 1 for r in needs):
            return None  # Alembic orders these by a set: by the string hash of its process
        order = self._topological_sort(set(needs))
        if order is None:
            return None
        return [self.revisions[r] for r in reversed(order)]

    def _normalized_downs(self, rev: Revision) -> tuple[str, ...]:
        return tuple(dict.fromkeys(rev.down_revisions + _normalized_deps(self, rev)))

    def _topological_sort(self, todo: set[str]) -> list[str] | None:
        """RevisionMap._topological_sort with the real heads as targets: newest first."""
        order = list(self.revisions)
        current_heads = sorted({t for t in self.heads if t in todo}, key=order.index)
        ancestors_by_idx = [self._with_ancestors(h) for h in current_heads]
        output: list[str] = []
        index = 0
        budget = 4 * (len(order) + 1) ** 2  # Alembic's loop ends on a DAG; never hang regardless
        while current_heads:
            budget -= 1
            if budget < 0:
                return None
            candidate = current_heads[index]
            for check_index, ancestors in enumerate(ancestors_by_idx):
                if check_index != index and candidate in ancestors:
                    index = check_index  # another head needs it: walk that one first
                    break
            else:
                if candidate in todo:
                    output.append(candidate)
                    todo.remove(candidate)
                rev = self.revisions[candidate]
                to_add = [r for r in self._normalized_downs(rev) if r in todo]
                to_add = [r for r in to_add if r not in current_heads]
                if not to_add:
                    del current_heads[index]
                    del ancestors_by_idx[index]
                    index = max(index - 1, 0)
                elif not _normalized_deps(self, rev) and len(rev.down_revisions) == 1:
                    current_heads[index] = to_add[0]
                    ancestors_by_idx[index].discard(candidate)
                else:
                    current_heads[index] = to_add[0]
                    current_heads.extend(to_add[1:])
                    ancestors_by_idx[index] = self._with_ancestors(to_add[0])
                    ancestors_by_idx.extend(self._with_ancestors(h) for h in to_add[1:])
        return None if todo else output

    def _with_ancestors(self, rev_id: str) -> set[str]:
        return {rev_id, *self._ancestors[rev_id]}


def _all_downs(rev: Revision) -> tuple[str, ...]:
    return tuple(dict.fromkeys(rev.down_revisions + rev.depends_on))


def _normalized_deps(graph: RevisionGraph, rev: Revision) -> tuple[str, ...]:
    """Dependencies not already depended on by a versioned ancestor (_normalize_depends_on)."""
    if not rev.depends_on:
        return ()
    inherited: set[str] = set()
    stack, seen = list(rev.down_revisions), set()
    while stack:
        ancestor = graph.revisions[stack.pop()]
        if ancestor.id in seen:
            continue
        seen.add(ancestor.id)
        inherited.update(ancestor.depends_on)
        stack.extend(ancestor.down_revisions)
    return tuple(sorted(set(rev.depends_on) - inherited))  # sorted: only ever one, see pending


def _dependency_order(revisions: dict[str, Revision]) -> list[str]:
    """Base first; raises StepAside on a cycle (Alembic's CycleDetected, or worse)."""
    state: dict[str, int] = {}
    order: list[str] = []
    for start in revisions:
        stack = [(start, iter(_all_downs(revisions[start])))]
        if state.get(start):
            continue
        state[start] = 1
        while stack:
            rev_id, downs = stack[-1]
            down = next(downs, None)
            if down is None:
                stack.pop()
                state[rev_id] = 2
                order.append(rev_id)
            elif state.get(down) == 1:
                raise StepAside(f"cycle through {down}", revisions[down].path)
            elif not state.get(down):
                state[down] = 1
                stack.append((down, iter(_all_downs(revisions[down]))))
    return order


def read_revision_graph(config: AlembicConfig) -> RevisionGraph | None:
    """The graph Alembic would load for this config, or None (logged once) if unsure."""
    try:
        if config.unmodelled:
            raise StepAside(config.unmodelled, config.path)
        return _build(config)
    except StepAside as aside:
        logger.info("static revision reader steps aside: %s", aside)
    except Exception as error:  # RecursionError, MemoryError, OSError: never raise
        logger.info("static revision reader steps aside: %s: %s", type(error).__name__, error)
    return None


def _build(config: AlembicConfig) -> RevisionGraph:
    search_path = [str(p) for p in config.prepend_sys_path] + [str(config.root), *sys.path[1:]]
    files = [read_revision_file(path, search_path) for path in revision_paths(config)]
    revisions: dict[str, Revision] = {}
    labels: dict[str, str] = {}
    for file in files:
        revision = _validated(file)
        if revision.id in revisions:
            raise StepAside(f"revision {revision.id} present more than once", file.path)
        revisions[revision.id] = revision
    for revision in revisions.values():
        for label in revision.branch_labels:
            if label in revisions or label in labels:
                raise StepAside(f"branch label {label} already used", revision.path)
            labels[label] = revision.id
    for rev_id, revision in revisions.items():
        for down in revision.down_revisions:
            if down not in revisions:
                raise StepAside(f"down_revision {down} not present", revision.path)
        for dep in revision.depends_on:
            if dep not in revisions and dep not in labels:
                raise StepAside(f"depends_on {dep} not present", revision.path)
        deps = tuple(dict.fromkeys(labels.get(d, d) for d in revision.depends_on))
        if rev_id in deps:
            raise StepAside("revision depends on itself", revision.path)
        revisions[rev_id] = Revision(
            rev_id, revision.down_revisions, revision.message, revision.path,
            revision.branch_labels, deps,
        )  # fmt: skip
    return RevisionGraph(revisions)


def _validated(file: RevisionFile) -> Revision:
    rev_id = file.id
    if not rev_id or _ILLEGAL_ID_CHARACTERS.intersection(rev_id) or rev_id in _SYMBOLIC_NAMES:
        raise StepAside(f"revision id {rev_id!r} Alembic refuses or resolves specially", file.path)
    downs = _names(file.down_revision, "down_revision", file)
    if len(set(downs)) != len(downs) or rev_id in downs:
        raise StepAside("down_revision repeats or names the revision itself", file.path)
    labels = _names(file.branch_labels, "branch_labels", file)
    depends_on = _names(file.depends_on, "depends_on", file)
    if rev_id in depends_on:
        raise StepAside("revision depends on itself", file.path)
    return Revision(rev_id, downs, file.message, file.path, labels, depends_on)


def _names(value: object, what: str, file: RevisionFile) -> tuple[str, ...]:
    """alembic.util.to_tuple for the forms whose meaning is plain: None, a str, a list/tuple."""
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, tuple | list) or not all(isinstance(i, str) and i for i in items):
        raise StepAside(f"{what} is not None, a string, or a list of strings", file.path)
    return tuple(items)
