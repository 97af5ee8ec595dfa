"""Reading a policy file: one that is not a policy, or is missing, named in the refusal; its validation record, which
lets a cold start read it without pydantic and is trusted no further than the checks it stands for."""

import json
import re
from pathlib import Path

import pytest

from tests.policies import ANYONE, GATED_POLICY, SETTABLE, SMALL_POLICY, caller, changed, write_policy
from voice_access.config.policy_check import main
from voice_access.config.policy_file import PolicyError, load_policy, record_path, validate, validation_record
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.policy.model import Requirements
from voice_access.domain.policy.rules import check_request, ga_param


@pytest.mark.parametrize("text", ["{not json", "", "[]", "null"])
def test_a_file_that_is_not_a_policy_document_fails_at_load(tmp_path: Path, text: str) -> None:
    # Given
    path = tmp_path / "policy.json"
    path.write_text(text)

    # When
    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    # Then it names the file, and what is wrong with it (a JSON error: where)
    assert re.match(
        rf"policy file {re.escape(str(path))} (is invalid: |is not valid JSON: line 1, column )", str(caught.value)
    )


def test_a_missing_policy_file_fails_at_load_naming_it(tmp_path: Path) -> None:
    # Given
    path = tmp_path / "absent.json"

    # When
    with pytest.raises(PolicyError) as caught:
        load_policy(path)

    # Then
    assert str(caught.value) == f"cannot read policy file {path}: No such file or directory"


def test_without_a_record_a_policy_is_validated_even_when_no_record_could_be_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an invalid policy with no record beside it, where the code that judges policies cannot be read
    path = write_policy(tmp_path, changed(SMALL_POLICY, ("version",), 2))
    monkeypatch.setattr("voice_access.config.policy_file.validation_record", lambda raw: None)

    # When / Then it is validated, and refused: a missing record never matches a missing digest
    with pytest.raises(PolicyError):
        load_policy(path)


def test_a_recorded_policy_reads_as_the_validated_one(tmp_path: Path) -> None:
    # Given the bundled, the small and the gated policy, each validated and recorded as the build does
    documents = (("bundled", json.loads(BUNDLED_POLICY.read_text())), ("small", SMALL_POLICY), ("gated", GATED_POLICY))
    for name, document in documents:
        (tmp_path / name).mkdir()
        path = write_policy(tmp_path / name, document)
        assert main([str(path)]) == 0

        # When each is loaded through its record
        read = load_policy(path)

        # Then it is the policy pydantic validated, profile for profile and rule for rule, down to each
        # value's type (repr tells 1 from 1.0 and from True, where == does not)
        assert repr(read) == repr(validate(path, path.read_bytes()))


def test_a_recorded_policy_rebuilds_each_profiles_requirements(tmp_path: Path) -> None:
    # Given the gated policy, validated and recorded as the build does
    path = write_policy(tmp_path, GATED_POLICY)
    assert main([str(path)]) == 0

    # When it is loaded through its record, without pydantic
    policy = load_policy(path)

    # Then requirements are values that judge callers, and defaults keep their candidates
    assert policy.profiles["studio"].requires == Requirements(groups=["premium", "staff"])
    assert policy.select(None, "realtime", caller(groups=("staff",)), param="session.type")[0] == "studio"
    assert policy.select(None, "realtime", ANYONE, param="session.type")[0] == "voice"


def test_a_record_that_vouches_for_bad_requirements_is_not_trusted(tmp_path: Path) -> None:
    # Given a policy with an empty group list, and a record that matches it (as if the check were skipped)
    path = write_policy(tmp_path, changed(GATED_POLICY, ("profiles", "studio", "requires", "groups"), []))
    record_path(path).write_text(f"{validation_record(path.read_bytes())}\n")

    # When / Then it is validated anyway, and refused
    with pytest.raises(PolicyError, match="leave the key out"):
        load_policy(path)


def test_a_default_reads_alike_through_the_record(tmp_path: Path) -> None:
    # Given a policy with a default, validated and recorded as the build does
    path = write_policy(
        tmp_path,
        changed(SMALL_POLICY, (*SETTABLE, "audio.output.voice"), {"type": "string", "enum": ["ash"], "default": "ash"}),
    )
    assert main([str(path)]) == 0

    # When it is read through its record, without pydantic's checks
    profile = load_policy(path).profiles["voice"]

    # Then the default is there and applied
    assert profile.defaults == (("audio.output.voice", "ash"),)
    assert check_request({}, "voice", profile, ga_param)["session"]["audio"]["output"]["voice"] == "ash"
