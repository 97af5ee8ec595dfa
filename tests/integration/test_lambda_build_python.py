"""`sam build` runs the build Makefiles with whatever PATH it has: they must find Python 3.13 themselves."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_build_finds_python_3_13_when_the_python313_on_path_fails(tmp_path: Path) -> None:
    # Given a PATH whose python3.13 fails, as pyenv's shim does without PYENV_VERSION, and pyenv's
    # versions folder holding a working one
    shims, versions = tmp_path / "shims", tmp_path / "pyenv" / "versions" / "3.13.0" / "bin"
    shims.mkdir()
    versions.mkdir(parents=True)
    broken = shims / "python3.13"
    broken.write_text("#!/bin/sh\necho 'pyenv: python3.13: command not found' >&2\nexit 127\n")
    broken.chmod(0o755)
    (versions / "python3.13").symlink_to(sys._base_executable)  # type: ignore[attr-defined]
    probe = tmp_path / "Makefile"
    probe.write_text(f"include {REPO / 'layers' / 'lambda-build.mk'}\nprint:\n\t@echo $(PYTHON313)\n")

    # When the shared build rules are read under that PATH
    ran = subprocess.run(
        ["make", "-s", "-f", str(probe), "print"],
        env={"PATH": f"{shims}:/usr/bin:/bin", "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "pyenv")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then they use pyenv's Python 3.13, not the failing shim
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == str(versions / "python3.13")
    assert os.access(ran.stdout.strip(), os.X_OK)
