"""launcher/constraints-oldest.txt, the other end of the launcher's ranges: .ci/run installs it
and runs the launcher's tests on it, so each lower bound in launcher/pyproject.toml must be
exactly what that file pins, or the bound is a claim nothing tests."""

from __future__ import annotations

import re
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support.urls import PROJECT_ROOT

LAUNCHER = PROJECT_ROOT / "launcher"
_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)$", re.M)


def lower_bounds() -> dict[str, Version]:
    project = tomllib.loads((LAUNCHER / "pyproject.toml").read_text())["project"]
    bounds = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        [floor] = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        bounds[canonicalize_name(requirement.name)] = Version(floor)
    return bounds


def oldest_pins() -> dict[str, Version]:
    text = (LAUNCHER / "constraints-oldest.txt").read_text()
    return {canonicalize_name(name): Version(version) for name, version in _PIN.findall(text)}


def test_every_lower_bound_is_the_pin_the_oldest_run_installs() -> None:
    """A bound raised or lowered without the oldest run following it fails here."""
    assert oldest_pins() == lower_bounds()


def test_the_oldest_run_is_in_ci() -> None:
    """.ci/run installs the constraints and runs the launcher's tests on them."""
    ci = (PROJECT_ROOT / ".ci" / "run").read_text()
    assert "-c launcher/constraints-oldest.txt" in ci
