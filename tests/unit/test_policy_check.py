"""The build's policy check (``python -m voice_access.config.policy_check FILE...``): each valid file gets its record
beside it, each invalid one is named with its problem, and the exit status says whether all were valid."""

from pathlib import Path

import pytest

from tests.policies import SMALL_POLICY, changed, write_policy
from voice_access.config.policy_check import main
from voice_access.config.policy_file import record_path, validation_record


def test_without_a_file_it_says_how_to_use_it(capsys: pytest.CaptureFixture[str]) -> None:
    # Given / When
    status = main([])

    # Then
    assert status == 2
    assert capsys.readouterr().err == "usage: python -m voice_access.config.policy_check POLICY_FILE...\n"


def test_a_valid_file_gets_its_record_beside_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given
    path = write_policy(tmp_path, SMALL_POLICY)

    # When
    status = main([str(path)])

    # Then
    assert status == 0
    assert record_path(path).read_text() == f"{validation_record(path.read_bytes())}\n"
    assert capsys.readouterr().out == f"{path}: valid; its record is {record_path(path)}, to deploy beside it\n"


def test_each_file_is_judged_and_one_invalid_file_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an invalid file, a missing one and a valid one
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    bad = write_policy(tmp_path / "bad", changed(SMALL_POLICY, ("version",), 2))
    missing = tmp_path / "missing.json"
    good = write_policy(tmp_path / "good", SMALL_POLICY)

    # When
    status = main([str(bad), str(missing), str(good)])

    # Then the check fails, naming each problem, and only the valid file is recorded
    assert status == 1
    printed = capsys.readouterr()
    refusals = printed.err.splitlines()
    assert refusals[0] == (
        f"voice_access.config.policy_check: policy file {bad} is invalid: (top level): Value error, version must be 1"
    )
    assert refusals[1].startswith("voice_access.config.policy_check: [Errno 2] No such file or directory")
    assert len(refusals) == 2
    assert not record_path(bad).exists()
    assert record_path(good).exists()
    assert printed.out.startswith(f"{good}: valid")


def test_a_valid_file_whose_record_cannot_be_computed_is_said_valid_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a valid file, where the code that judges policies cannot be read
    path = write_policy(tmp_path, SMALL_POLICY)
    monkeypatch.setattr("voice_access.config.policy_check.validation_record", lambda raw: None)

    # When
    status = main([str(path)])

    # Then
    assert status == 0
    assert not record_path(path).exists()
    assert capsys.readouterr().out == f"{path}: valid (no record written: this code's own files could not be read)\n"
