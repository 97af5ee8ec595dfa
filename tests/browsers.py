"""What the headless Chromium tests share: the pinned npm packages, and whether a missing Chromium may skip them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.paths import ROOT

PINNED = json.loads((ROOT / "package.json").read_text())["dependencies"]
INSTALL_CHROMIUM = (
    "headless Chromium is not installed: `make test` installs Debian's package where it runs as root with "
    "apt-get; elsewhere run `sudo apt-get install chromium` (Debian, Ubuntu), then run the tests again"
)


def in_ci() -> bool:
    """CI sets CI: there the browser tests never skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def chromium_path(packages: tuple[str, ...]) -> str:
    """Debian's Chromium, with Node.js and the pinned npm ``packages`` the tests drive it with; missing, the
    tests skip saying how to install it, except in CI, where they fail."""
    path = shutil.which("chromium")
    if path is None:
        if in_ci():
            pytest.fail(f"{INSTALL_CHROMIUM} (CI is set: the browser tests never skip there)", pytrace=False)
        pytest.skip(INSTALL_CHROMIUM)
    assert shutil.which("node"), "Node.js is not installed: install Node.js 20 or newer, then run `npm ci`"
    assert_pinned(packages)
    return path


def assert_pinned(packages: tuple[str, ...]) -> None:
    """node_modules holds each of the npm ``packages`` at the version package.json pins."""
    for package in packages:
        manifest = ROOT / "node_modules" / package / "package.json"
        assert manifest.is_file(), f"the {package} npm package is not installed: run `npm ci` in the repository root"
        installed = json.loads(manifest.read_text())["version"]
        assert installed == PINNED[package], (
            f"node_modules has {package} {installed}, package.json pins {PINNED[package]}: run `npm ci`"
        )


def run_driver(driver: Path, request: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    """What a tests/browser driver printed as JSON, given ``request`` as JSON on its stdin (which keeps client
    secrets and tokens off its command line). Its output goes through pytest's capture, which the secret guard
    reads."""
    node = shutil.which("node")
    assert node
    finished = subprocess.run(
        [node, str(driver)],
        input=json.dumps(request),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    sys.stdout.write(finished.stdout + finished.stderr)
    assert finished.returncode == 0, "the browser driver failed: its output is in the captured stdout"
    seen: dict[str, Any] = json.loads(finished.stdout)
    return seen
