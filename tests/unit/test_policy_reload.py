"""The policy file as a running function reads it: once per container; a change is read again and reported (what
changed, or why it was refused); a broken change keeps the last good policy serving; a file never valid is refused
every time."""

import gc
import json
import os
import weakref
from pathlib import Path
from typing import Any

import pytest

from tests.output import Output
from tests.policies import LIMITS, MINUTE, SHIPPED, SMALL_POLICY, changed, shipped_policy, shipped_text, write_policy
from voice_access.config.policy_file import PolicyChange, PolicyError, cached_policy, checked_policy, validate
from voice_access.config.settings import BUNDLED_POLICY
from voice_access.domain.errors import ServiceMisconfigured
from voice_access.domain.limits import Window


def rewrite(path: Path, text: str, second: int) -> None:
    """The file now holds ``text``, modified at ``second``: each version its own time, whatever the clock's grain."""
    path.write_text(text)
    os.utime(path, ns=(second * 1_000_000_000, second * 1_000_000_000))


def longer_secrets(document: dict[str, Any]) -> None:
    document["profiles"]["assistant"]["expires_after"]["max_seconds"] -= 1


def a_second_assistant(document: dict[str, Any]) -> None:
    document["profiles"]["assistant-2"] = document["profiles"]["assistant"]


def broken_json(text: str) -> tuple[str, str]:
    """``text`` (indented JSON) with a comma where the colon of its third line belongs, and where that is."""
    lines = text.split("\n")
    column = lines[2].index(":") + 1
    lines[2] = lines[2].replace(":", ",", 1)
    return "\n".join(lines), f"line 3, column {column}: Expecting ':' delimiter"


def test_a_broken_edit_keeps_the_last_good_policy_serving_and_is_reported_once(tmp_path: Path) -> None:
    # Given the shipped policy in use
    path = shipped_policy(tmp_path, indent=2)
    text = path.read_text()
    rewrite(path, text, 1)
    changes: list[PolicyChange] = []
    good = cached_policy(path, changes.append)

    # When an edit breaks its JSON
    broken, where = broken_json(text)
    rewrite(path, broken, 2)

    # Then every read still gets the last good policy, and the refusal is reported once, with line and column
    assert [cached_policy(path, changes.append) for _ in range(3)] == [good] * 3
    [refused] = changes
    assert refused.path == path
    assert refused.refused == f"policy file {path} is not valid JSON: {where}"

    # When it is fixed, with one profile changed
    rewrite(path, shipped_text(longer_secrets, indent=2), 3)

    # Then the new policy serves, and the report names the changed profile
    fixed = cached_policy(path, changes.append)
    assert fixed != good
    assert changes[1:] == [PolicyChange(path, changed=("assistant",))]


def test_a_reload_names_the_profiles_added_and_removed_and_the_settings_changed(tmp_path: Path) -> None:
    # Given the shipped policy in use
    path = shipped_policy(tmp_path)
    rewrite(path, path.read_text(), 1)
    changes: list[PolicyChange] = []
    cached_policy(path, changes.append)

    # When a profile is added, and then removed with the spend brake changed
    rewrite(path, shipped_text(a_second_assistant), 2)
    cached_policy(path, changes.append)

    def another_brake(document: dict[str, Any]) -> None:
        document["spend_brake"] = {"mints": 7, "seconds": 86400}

    rewrite(path, shipped_text(another_brake), 3)
    cached_policy(path, changes.append)

    # Then each reload said so
    assert changes == [
        PolicyChange(path, added=("assistant-2",)),
        PolicyChange(path, removed=("assistant-2",), settings_changed=("spend_brake",)),
    ]


def test_a_file_never_valid_is_refused_on_every_read_until_it_is_fixed(tmp_path: Path) -> None:
    # Given a policy file whose first version is broken
    path = shipped_policy(tmp_path, indent=2)
    text = path.read_text()
    broken, where = broken_json(text)
    rewrite(path, broken, 1)
    changes: list[PolicyChange] = []

    # When it is read, twice / Then each read refuses it, saying where (fail closed: there is no policy to keep)
    for _ in range(2):
        with pytest.raises(PolicyError) as refused:
            cached_policy(path, changes.append)
        assert str(refused.value) == f"policy file {path} is not valid JSON: {where}"
    assert changes == []

    # When it is fixed / Then it serves, and the report lists its profiles as added
    rewrite(path, text, 2)
    policy = cached_policy(path, changes.append)
    assert changes == [PolicyChange(path, added=tuple(sorted(policy.profiles)))]


def test_a_policy_file_that_goes_missing_keeps_the_last_good_policy_until_it_is_back(tmp_path: Path) -> None:
    # Given a policy file in use
    path = shipped_policy(tmp_path)
    changes: list[PolicyChange] = []
    good = cached_policy(path, changes.append)
    text = path.read_text()

    # When it is removed / Then the last good policy serves, and the refusal names the file
    path.unlink()
    assert cached_policy(path, changes.append) is good
    assert [change.refused for change in changes] == [f"cannot read policy file {path}: No such file or directory"]

    # When it is back / Then it is read again
    rewrite(path, text, 5)
    assert cached_policy(path, changes.append) == good
    assert changes[1:] == [PolicyChange(path)]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        pytest.param(
            '{"version": 1,\n  "profiles": {\n',
            "line 3, column 1: Expecting property name enclosed in double quotes",
            id="cut-short",
        ),
        pytest.param(
            '{"version": 1,}',
            "line 1, column 14: Illegal trailing comma before end of object",
            id="trailing-comma",
        ),
        pytest.param("", "line 1, column 1: Expecting value", id="empty"),
    ],
)
def test_a_json_error_names_the_file_line_and_column(text: str, problem: str) -> None:
    # When a file that is not JSON is validated
    with pytest.raises(PolicyError) as refused:
        validate(Path("/srv/policy.json"), text.encode())

    # Then the problem names the file, the line and the column
    assert str(refused.value) == f"policy file /srv/policy.json is not valid JSON: {problem}"


def test_a_schema_error_names_the_field_path() -> None:
    # When a file whose JSON is fine but whose field is not is validated
    document = json.loads(SHIPPED.read_text())
    document["profiles"]["assistant"]["expires_after"]["max_seconds"] = "600"
    with pytest.raises(PolicyError) as refused:
        validate(Path("policy.json"), json.dumps(document).encode())

    # Then the problem names the field by its path in the file
    assert "profiles.assistant.expires_after.max_seconds: Input should be a valid integer" in str(refused.value)


def test_refusing_a_file_never_valid_keeps_nothing_of_the_requests_it_refused(tmp_path: Path) -> None:
    # Given a policy file that was never valid, refused to a request holding its event (a bearer token and all)
    path = tmp_path / "policy.json"
    path.write_text("{")

    class Event(dict[str, str]):
        """A request's event, as a handler's frame holds it."""

    def request(event: Event) -> None:
        with pytest.raises(PolicyError):
            cached_policy(path)

    events = [Event(authorization="Bearer a-user-token") for _ in range(3)]
    watched = [weakref.ref(event) for event in events]

    # When each of them is refused, and the requests are over
    for event in events:
        request(event)
    del events, event
    gc.collect()

    # Then no request's event is still alive: a refusal held once and raised again would keep every frame it passed
    assert [ref() for ref in watched] == [None, None, None]


def test_the_policy_is_read_once_per_container() -> None:
    # Given / When
    first, second = cached_policy(BUNDLED_POLICY), cached_policy(BUNDLED_POLICY)

    # Then
    assert first is second


def test_a_changed_policy_file_is_read_again(tmp_path: Path) -> None:
    # Given a policy file read once
    path = write_policy(tmp_path, changed(SMALL_POLICY, LIMITS, {"per_caller": [MINUTE]}))
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    first = cached_policy(path)
    assert cached_policy(path) is first

    # When it is rewritten (another size and modification time)
    path.write_text(json.dumps(changed(SMALL_POLICY, LIMITS, {"per_caller": [{"mints": 2, "seconds": 2592000}]})))
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))

    # Then the next read is the new policy, and stays cached
    second = cached_policy(path)
    assert second is not first
    limits = second.profiles["voice"].limits
    assert limits is not None
    assert limits.per_caller == [Window(mints=2, seconds=2592000)]
    assert cached_policy(path) is second


def test_a_same_size_edit_is_read_again(tmp_path: Path) -> None:
    # Given a policy file read once
    path = write_policy(tmp_path, changed(SMALL_POLICY, LIMITS, {"per_caller": [{"mints": 10, "seconds": 60}]}))
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    cached_policy(path)

    # When a digit changes (the same size) at a later time
    path.write_text(json.dumps(changed(SMALL_POLICY, LIMITS, {"per_caller": [{"mints": 20, "seconds": 60}]})))
    os.utime(path, ns=(1_000_000_001, 1_000_000_001))

    # Then
    limits = cached_policy(path).profiles["voice"].limits
    assert limits is not None
    assert limits.per_caller == [Window(mints=20, seconds=60)]


def test_the_checked_policy_logs_a_reload_naming_what_changed(tmp_path: Path, output: Output) -> None:
    # Given the shipped policy in use by the function
    path = shipped_policy(tmp_path)
    rewrite(path, path.read_text(), 1)
    checked_policy(path)

    # When a profile is added
    rewrite(path, shipped_text(a_second_assistant), 2)
    policy = checked_policy(path)

    # Then it serves, and one line says what changed
    assert "assistant-2" in policy.profiles
    [reloaded] = [line for line in output.logs() if line["message"] == "policy reloaded"]
    assert reloaded["policy_path"] == str(path)
    assert (reloaded["profiles_added"], reloaded["profiles_removed"], reloaded["profiles_changed"]) == (
        ["assistant-2"],
        [],
        [],
    )
    assert reloaded["settings_changed"] == []


def test_the_checked_policy_logs_and_counts_a_refused_change_once(tmp_path: Path, output: Output) -> None:
    # Given the shipped policy in use by the function
    path = shipped_policy(tmp_path, indent=2)
    text = path.read_text()
    rewrite(path, text, 1)
    good = checked_policy(path)

    # When an edit breaks it, and the function reads it twice
    broken, where = broken_json(text)
    rewrite(path, broken, 2)
    reads = [checked_policy(path), checked_policy(path)]

    # Then the last good policy serves, and the refusal is logged and counted once
    assert reads == [good, good]
    [refused] = [line for line in output.logs() if line["message"].startswith("policy change refused")]
    assert refused["message"] == "policy change refused: the last good policy keeps serving"
    assert refused["level"] == "ERROR"
    assert refused["problem"] == f"policy file {path} is not valid JSON: {where}"
    assert output.metric_count("ConfigurationErrors", reason="policy_invalid") == 1


def test_a_policy_file_never_valid_is_a_misconfigured_service(tmp_path: Path, output: Output) -> None:
    # Given a policy file that was never valid
    path = tmp_path / "policy.json"
    path.write_text("{")

    # When the function reads it
    with pytest.raises(ServiceMisconfigured) as refused:
        checked_policy(path)

    # Then it mints nothing, saying so to the caller, and the log says why, for the operator
    assert (refused.value.code, refused.value.message) == (
        "policy_invalid",
        "This service is misconfigured and mints nothing until an operator fixes it (see the service's logs).",
    )
    [logged] = [line for line in output.logs() if line["message"].startswith("refusing to mint")]
    assert logged["message"] == "refusing to mint: the deployment is misconfigured"
    assert (logged["reason"], logged["problem"]) == (
        "policy_invalid",
        f"policy file {path} is not valid JSON: line 1, column 2: Expecting property name enclosed in double quotes",
    )
    assert output.metric_count("ConfigurationErrors", reason="policy_invalid") == 1
