"""The versions tested are the versions built and deployed, and the deployed layer carries only what the
function imports: pydantic validates the policy at build time and is pinned apart from the layer."""

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.paths import ROOT

LAYER = ROOT / "layers" / "dependencies" / "requirements.txt"
BUILD = ROOT / "functions" / "build-requirements.txt"
BUILD_ONLY = {"pydantic", "pydantic-core", "annotated-types", "typing-inspection"}


def pins(path: Path) -> dict[str, str]:
    found = (re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line.strip()) for line in path.read_text().splitlines())
    return {match[1].lower(): match[2] for match in found if match}


def dev_pins() -> dict[str, str]:
    group = tomllib.loads((ROOT / "pyproject.toml").read_text())["dependency-groups"]["dev"]
    return {name.split("[")[0].lower(): pin for name, _, pin in (entry.partition("==") for entry in group) if pin}


def test_the_layer_carries_no_build_time_tool() -> None:
    # Given the layer's pins
    # When they are read
    layer = pins(LAYER)

    # Then pydantic and its own dependencies are not among them
    assert layer
    assert BUILD_ONLY.isdisjoint(layer)


@pytest.mark.parametrize(("package", "pin"), sorted(pins(BUILD).items()))
def test_the_build_validates_with_the_versions_the_tests_use(package: str, pin: str) -> None:
    # Given a package the build validates the policy with
    # When its pin is compared with the tests' pins and with what this environment has installed
    tested = dev_pins().get(package) or pins(LAYER).get(package)

    # Then all three agree
    assert tested == pin, f"{package}: functions/build-requirements.txt pins {pin}, pyproject/layer pin {tested}"
    assert version(package) == pin
