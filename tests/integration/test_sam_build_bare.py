"""The README's bare `sam build` passes with a plain Python 3.13 first on PATH: the build installs what its policy
check needs (functions/build-requirements.txt) and imports nothing else, so no project venv has to lend it packages."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.paths import ROOT
from voice_access.config.policy_file import record_path, validation_record

SAM = ROOT / ".venv-sam" / "bin" / "sam"
POLICY = Path("TokenVendingFunction") / "voice_access" / "config" / "policy.json"


def plain_environment() -> dict[str, str]:
    """This process's environment with no virtual environment in it: no venv's bin on PATH, none activated."""
    venvs = {str(ROOT / ".venv" / "bin"), str(ROOT / ".venv-sam" / "bin")}
    if "VIRTUAL_ENV" in os.environ:
        venvs.add(str(Path(os.environ["VIRTUAL_ENV"]) / "bin"))
    path = [entry for entry in os.environ.get("PATH", "").split(os.pathsep) if entry and entry not in venvs]
    unset = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"}
    environment = {key: value for key, value in os.environ.items() if key not in unset}
    return environment | {"PATH": os.pathsep.join(path), "SAM_CLI_TELEMETRY": "0"}


def python_3_13(environment: dict[str, str], scratch: Path) -> str:
    """Python 3.13 found as the build finds it (layers/lambda-build.mk): on PATH, else in pyenv's versions."""
    probe = scratch / "Makefile"
    probe.write_text(f"include {ROOT / 'layers' / 'lambda-build.mk'}\nprint:\n\t@echo $(PYTHON313)\n")
    found = subprocess.run(
        ["make", "-s", "-f", str(probe), "print"], env=environment, capture_output=True, text=True, timeout=60
    )
    assert found.returncode == 0, f"no Python 3.13 on this machine:\n{found.stderr}"
    return found.stdout.strip()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_bare_sam_build_passes_with_a_plain_python_3_13_first_on_path(tmp_path: Path) -> None:
    # Given a virtual environment of the machine's Python 3.13 with nothing installed, its python3.13 first on PATH
    assert SAM.is_file(), f"{SAM} is missing: run `make validate`, which installs the SAM CLI there"
    environment = plain_environment()
    bare = tmp_path / "bare"
    subprocess.run([python_3_13(environment, tmp_path), "-m", "venv", str(bare)], check=True, timeout=300)
    environment["PATH"] = f"{bare / 'bin'}{os.pathsep}{environment['PATH']}"

    # When `sam build` runs as the README gives it, into a build and cache folder of its own
    build = tmp_path / "build"
    built = subprocess.run(
        [str(SAM), "build", "--build-dir", str(build), "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )

    # Then it passes, and the function carries the policy with the record of its validation
    assert built.returncode == 0, f"sam build failed:\n{built.stdout[-4000:]}\n{built.stderr[-4000:]}"
    policy = build / POLICY
    assert record_path(policy).read_text().strip() == validation_record(policy.read_bytes())
