"""requirements.lock, what deploys install (the Dockerfile, the systemd recipe): every
dependency the two pyproject.toml files declare is pinned there within its range, with hashes,
so the lock cannot drift from what the projects ask for unnoticed."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support.urls import PROJECT_ROOT

LOCK = PROJECT_ROOT / "requirements.lock"
LOCAL = {"alembic-prestart", "users-service"}  # installed from this repository, not locked
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s\\;]+)", re.M)


def pins() -> dict[str, str]:
    return {canonicalize_name(name): version for name, version in _PIN.findall(LOCK.read_text())}


def declared() -> list[Requirement]:
    """What a deploy installs: both projects' dependencies and the launcher's deploy extras."""
    service = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    launcher = tomllib.loads((PROJECT_ROOT / "launcher" / "pyproject.toml").read_text())["project"]
    lines = [*service["dependencies"], *launcher["dependencies"]]
    for extra in ("standard", "metrics"):
        lines += launcher["optional-dependencies"][extra]
    return [Requirement(line) for line in lines]


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    """A dependency added to, or narrowed in, a pyproject.toml without relocking fails here."""
    locked = pins()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name in LOCAL:
            continue
        assert name in locked, f"{name} is not in requirements.lock: relock (see its header)"
        assert requirement.specifier.contains(locked[name], prereleases=True), (
            f"requirements.lock pins {name}=={locked[name]}, outside {requirement.specifier}"
        )


def test_every_pin_has_hashes() -> None:
    """pip install --require-hashes refuses a pin without one."""
    entries = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", LOCK.read_text())
    for entry in entries[1:]:
        assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_launcher_itself_is_not_locked() -> None:
    """The two distributions of this repository are installed from it, never from the index."""
    assert not LOCAL & set(pins())
