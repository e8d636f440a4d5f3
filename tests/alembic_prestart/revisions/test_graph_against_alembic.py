"""The static reader against Alembic itself, on generated trees and database positions."""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from alembic_prestart.revisions.query import _pending
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.revision_trees import (
    alembic_heads,
    alembic_pending,
    alembic_script,
    reader,
    revision_source,
    write_project,
)

HOSTILE = [
    "down_revision = {down!r}",
    "if True:\n    down_revision = {down!r}",
    "try:\n    pass\nexcept ImportError:\n    revision = 'zz'",
    "globals()['down_revision'] = None",
    "(revision := 'zz')",
    "revision, other = 'zz', 1",
    "other = revision = 'zz'",
    "from os import sep as depends_on",
    "del branch_labels",
    "revision += 'z'",
    "for down_revision in []:\n    pass",
    "with open(__file__) as branch_labels:\n    pass",
    "def upgrade2():\n    global revision\n    revision = 'zz'",
    "from os.path import *",
    "import no_such_module_for_revisions",
    "value = {{[]}}",
    "value = " + "(" * 200 + ")" * 200,
    "raise RuntimeError('boom')",
]
BAD_IDS = ["a-b", "a@b", "a+b", "a:b", "heads", ""]


@dataclass
class Tree:
    ids: list[str]
    downs: dict[str, tuple[str, ...]]
    deps: dict[str, tuple[str, ...]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    forms: dict[str, int] = field(default_factory=dict)
    folders: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, dict[str, object]] = field(default_factory=dict)


@st.composite
def trees(draw: st.DrawFn, hostile: bool) -> tuple[Tree, str]:
    n = draw(st.integers(1, 7))
    ids = draw(
        st.lists(st.text("abcdef0123", min_size=4, max_size=6), min_size=n, max_size=n, unique=True)
    )
    tree = Tree(ids=ids, downs={})
    for i, rev in enumerate(ids):
        k = draw(st.integers(0, min(i, 2))) if i else 0
        if i and draw(st.integers(0, 4)) == 0:
            k = 0  # another base
        elif i and k == 0:
            k = 1
        tree.downs[rev] = tuple(draw(st.permutations(ids[:i]))[:k])
        if i and draw(st.integers(0, 5)) == 0:
            dep = draw(st.sampled_from(ids[:i]))
            label = next((lab for lab, target in tree.labels.items() if target == dep), None)
            tree.deps[rev] = ((label or dep),)
        if draw(st.integers(0, 5)) == 0:
            tree.labels[f"label_{rev}"] = rev
        tree.forms[rev] = draw(st.integers(0, 3))
        tree.folders[rev] = draw(st.sampled_from(["migrations/versions", "more", "more/sub"]))
    layout = draw(st.sampled_from(["single", "multiple", "recursive"]))
    if layout == "single":
        tree.folders = dict.fromkeys(ids, "migrations/versions")
    if hostile:
        victim = draw(st.sampled_from(ids))
        kind = draw(
            st.sampled_from(["rebind", "bad_id", "self_loop", "cycle", "missing", "dep", "label"])
        )
        if kind == "rebind":
            tree.extra[victim] = draw(st.sampled_from(HOSTILE))
        elif kind == "bad_id":
            tree.overrides[victim] = {"revision": draw(st.sampled_from(BAD_IDS))}
        elif kind == "self_loop":
            tree.overrides[victim] = {"down_revision": victim}
        elif kind == "cycle":
            tree.overrides[ids[0]] = {"down_revision": ids[-1]}
        elif kind == "missing":
            tree.overrides[victim] = {"down_revision": "missing"}
        elif kind == "dep":
            tree.overrides[victim] = {"depends_on": "nosuchrev"}
        else:
            tree.overrides[victim] = {"branch_labels": draw(st.sampled_from(ids))}
    return tree, layout


def _value(values: tuple[str, ...], form: int) -> object:
    if not values:
        return None if form % 2 == 0 else ()
    if len(values) == 1 and form < 2:
        return values[0]
    return list(values) if form == 3 else values


def _write(root: Path, tree: Tree, layout: str) -> Path:
    files = {}
    for rev in tree.ids:
        form = tree.forms[rev]
        labels = tuple(lab for lab, target in tree.labels.items() if target == rev)
        fields: dict[str, object] = {
            "revision": rev,
            "down_revision": _value(tree.downs[rev], form),
            "branch_labels": _value(labels, form),
            "depends_on": _value(tree.deps.get(rev, ()), form),
        }
        fields.update(tree.overrides.get(rev, {}))
        extra = tree.extra.get(rev, "").format(down=fields["down_revision"])
        source = revision_source(
            fields["revision"],
            fields["down_revision"],
            labels=fields["branch_labels"],
            depends_on=fields["depends_on"],
            message=f"revision {rev}",
            extra=extra,
        )
        files[f"{tree.folders[rev]}/{rev}_file.py"] = source
    extra_ini = {
        "single": "",
        "multiple": "version_locations = %(here)s/migrations/versions:%(here)s/more",
        "recursive": "version_locations = %(here)s/migrations/versions:%(here)s/more\n"
        "recursive_version_locations = true",
    }[layout]
    return write_project(root, files, extra_ini)


def _positions(tree: Tree) -> list[tuple[str, ...]]:
    """Heads of every down-closed set of revisions (valid states), and a few invalid ones."""
    parents = {
        r: set(tree.downs[r]) | {tree.labels.get(d, d) for d in tree.deps.get(r, ())}
        for r in tree.ids
    }
    states = []
    for size in range(len(tree.ids) + 1):
        for subset in itertools.combinations(tree.ids, size):
            chosen = set(subset)
            if all(parents[r] <= chosen for r in chosen):
                below = {p for r in chosen for p in parents[r]}
                states.append(tuple(r for r in tree.ids if r in chosen and r not in below))
    invalid = [("unknown1",), (tree.ids[0], "unknown2")]
    for rev in tree.ids:
        if parents[rev]:
            invalid.append((rev, sorted(parents[rev])[0]))
    return list(dict.fromkeys(states[:40] + invalid))


def _compare(tree: Tree, layout: str, *, must_answer: bool) -> None:
    with tempfile.TemporaryDirectory() as folder:
        ini = _write(Path(folder), tree, layout)
        graph = reader(ini)
        script = alembic_script(ini)
        if script is None:
            assert graph is None, "Alembic refuses this tree, the reader must step aside"
            return
        if graph is None:
            assert not must_answer, "the reader stepped aside on an ordinary tree"
            return
        assert graph.heads == alembic_heads(script)
        for current in _positions(tree):
            pending = graph.pending(current)
            expected = alembic_pending(script, current)
            if pending is None:
                assert not must_answer or expected is None, f"unsure at {current}"
                continue
            assert [r.id for r in pending] == expected, f"at {current}"
            assert all(r.message == f"revision {r.id}" for r in pending)
            if must_answer and expected is not None:
                # The slow path (`check` asking Alembic in a child) uses its public API only:
                # the same revisions as `upgrade` runs.
                assert sorted(r.revision for r in _pending(script, current)) == sorted(expected)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(hostile=False))
def test_ordinary_trees_answer_exactly_as_alembic(case: tuple[Tree, str]) -> None:
    """Ordinary trees: never steps aside, and heads and every upgrade match Alembic's."""
    _compare(*case, must_answer=True)


@pytest.mark.slow  # 150 hostile trees: the full suite's
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trees(hostile=True))
def test_hostile_trees_answer_as_alembic_or_step_aside(case: tuple[Tree, str]) -> None:
    """Hostile trees: the reader steps aside or gives exactly Alembic's answer."""
    _compare(*case, must_answer=False)
