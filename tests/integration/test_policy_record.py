"""The policy validated when the function is built: a cold start reads it without importing pydantic, and
any file the build did not validate is validated at run time, as strictly (config/policy_file.py), or refused where
pydantic is not installed, as in a deployed function."""

import json
import shutil
import subprocess
import sys
from http import HTTPStatus
from pathlib import Path
from typing import cast

import pytest

from tests.docs import code_block
from tests.probes import run_probe
from voice_access.config.policy_check import main as validate_files
from voice_access.config.policy_file import record_path
from voice_access.config.settings import BUNDLED_POLICY

pytestmark = pytest.mark.usefixtures("function_env")

PROBE = """
import json, sys
if sys.argv[1] == "without-pydantic":
    sys.modules["pydantic"] = None  # as in a deployed function: `import pydantic` raises ImportError
from voice_access.edge.app import lambda_handler
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "f", 256, "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
answer = lambda_handler(json.load(open("events/client_secrets.json")), Context())
from voice_access.domain.policy.model import Policy
print(json.dumps({
    "pydantic": "pydantic" in sys.modules,
    "policy_check": "voice_access.config.policy_check" in sys.modules,
    "dataclasses": "__dataclass_fields__" in vars(Policy),
    "status": answer["statusCode"],
    "body": answer["body"],
}))
"""


@pytest.fixture(params=["extension"])
def secrets_via(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def cold_start(policy: Path, *, pydantic: bool = True) -> dict[str, object]:
    """A fresh process with the function's environment and this policy: imports the handler and mints once.
    ``logs`` holds the JSON lines it logged."""
    result, logged = run_probe(PROBE, "with-pydantic" if pydantic else "without-pydantic", POLICY_PATH=str(policy))
    result["logs"] = [json.loads(line) for line in logged if line.startswith("{")]
    return result


def test_a_policy_validated_at_build_is_read_without_pydantic(tmp_path: Path) -> None:
    # Given the bundled policy, validated as sam build validates it
    policy = Path(shutil.copy(BUNDLED_POLICY, tmp_path / "policy.json"))
    assert validate_files([str(policy)]) == 0

    # When a container starts and mints
    result = cold_start(policy)

    # Then it minted, and pydantic was never imported, nor the build's policy check, nor the records made dataclasses
    assert result["status"] == HTTPStatus.OK
    assert result["pydantic"] is False
    assert result["policy_check"] is False
    assert result["dataclasses"] is False


def test_a_policy_without_a_record_is_validated_at_run_time(tmp_path: Path) -> None:
    # Given the bundled policy, copied without its record
    policy = Path(shutil.copy(BUNDLED_POLICY, tmp_path / "policy.json"))

    # When a container starts and mints
    result = cold_start(policy)

    # Then it minted, after validating the policy with pydantic
    assert result["status"] == HTTPStatus.OK
    assert result["pydantic"] is True


def test_a_policy_changed_after_validation_is_validated_again_and_refused_if_invalid(tmp_path: Path) -> None:
    # Given a validated policy, then edited so that a TTL bound is a string: its record no longer matches
    policy = Path(shutil.copy(BUNDLED_POLICY, tmp_path / "policy.json"))
    assert validate_files([str(policy)]) == 0
    policy.write_text(policy.read_text().replace('"max_seconds": 600', '"max_seconds": "600"', 1))

    # When a container starts and is asked to mint
    result = cold_start(policy)

    # Then it refuses, as for any invalid policy: the record stands for the file it was written for only
    assert result["status"] == HTTPStatus.INTERNAL_SERVER_ERROR
    assert json.loads(str(result["body"]))["error"]["code"] == "policy_invalid"
    assert result["pydantic"] is True


def test_a_policy_without_a_record_is_refused_where_pydantic_is_not_installed(tmp_path: Path) -> None:
    # Given the bundled policy without its record, in a container without pydantic (as deployed)
    policy = Path(shutil.copy(BUNDLED_POLICY, tmp_path / "policy.json"))

    # When it starts and is asked to mint
    result = cold_start(policy, pydantic=False)

    # Then it refuses (fail closed), and its log tells the operator how to build the policy's record
    assert result["status"] == HTTPStatus.INTERNAL_SERVER_ERROR
    assert json.loads(str(result["body"]))["error"]["code"] == "policy_invalid"
    logs = cast(list[dict[str, str]], result["logs"])
    refusal = next(line for line in logs if line.get("reason") == "policy_invalid")
    assert "sam build" in refusal["problem"]
    assert "python -m voice_access.config.policy_check FILE" in refusal["problem"]


def test_a_policy_validated_at_build_needs_no_pydantic(tmp_path: Path) -> None:
    # Given the bundled policy, validated as sam build validates it
    policy = Path(shutil.copy(BUNDLED_POLICY, tmp_path / "policy.json"))
    assert validate_files([str(policy)]) == 0

    # When a container without pydantic starts and mints
    result = cold_start(policy, pydantic=False)

    # Then it minted
    assert result["status"] == HTTPStatus.OK


def test_validating_an_invalid_policy_fails_and_writes_no_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a policy with an unknown key
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({**json.loads(BUNDLED_POLICY.read_text()), "defaults": {}}))

    # When it is validated, as sam build does
    status = validate_files([str(policy)])

    # Then the build would fail, saying why, and nothing vouches for the file
    assert status == 1
    assert "defaults" in capsys.readouterr().err
    assert not record_path(policy).exists()


def test_the_readmes_policy_check_command_validates_the_bundled_policy(tmp_path: Path) -> None:
    # Given the README's command for checking a policy, run on a copy of the bundled one
    block = code_block("bash", "PYTHONPATH=functions")
    command = next(line for line in block.splitlines() if line.startswith("PYTHONPATH=functions"))
    copy_of_policy = tmp_path / "policy.json"
    copy_of_policy.write_bytes(BUNDLED_POLICY.read_bytes())
    command = command.replace(".venv/bin/python", sys.executable).replace(
        "functions/voice_access/config/policy.json", str(copy_of_policy)
    )

    # When it runs from the repository's root
    ran = subprocess.run(
        ["bash", "-c", command], cwd=BUNDLED_POLICY.parents[2], capture_output=True, text=True, check=False
    )

    # Then it says the file is valid and writes its record
    assert ran.returncode == 0, ran.stderr
    assert "valid" in ran.stdout
    assert record_path(copy_of_policy).exists()


CHECK_PROBE = """
import json, runpy, sys, sysconfig
sys.argv = ["policy_check", sys.argv[1]]
try:
    runpy.run_module("voice_access.config.policy_check", run_name="__main__")
except SystemExit as exit:
    status = exit.code
installed = tuple({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
files = {name: getattr(module, "__file__", None) or "" for name, module in list(sys.modules.items())}
packages = {name.split(".")[0] for name, file in files.items() if file.startswith(installed)}
print(json.dumps({"status": status, "packages": sorted(packages)}))
"""


def test_the_builds_policy_check_imports_only_what_the_build_installs(tmp_path: Path) -> None:
    # Given the bundled policy, and the packages the build installs for its check (functions/build-requirements.txt)
    policy = Path(shutil.copy(BUNDLED_POLICY, tmp_path / "policy.json"))
    requirements = (BUNDLED_POLICY.parents[2] / "build-requirements.txt").read_text().splitlines()
    installed = {line.split("==")[0].replace("-", "_") for line in requirements if line and not line.startswith("#")}

    # When the build's command checks it
    result, _ = run_probe(CHECK_PROBE, str(policy))

    # Then it passes, importing no installed package but those (a bare `sam build` has no other), pydantic among them
    assert result["status"] == 0
    assert "pydantic" in result["packages"]
    assert set(result["packages"]) <= installed
    assert record_path(policy).exists()
