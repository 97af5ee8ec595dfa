"""`make run`'s start checks (local/start_checks.py): the function's configuration read as the function reads it,
so that a broken one stops `make run` at once rather than failing every request."""

import pytest

from local.stand_ins import SetupError
from local.start_checks import check_policy

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:openai-api-key-AbCdEf"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SECRET_CACHE_TTL_SECONDS", "soon"),  # a setting of every function
        ("UPSTREAM_READ_TIMEOUT_SECONDS", "slow"),  # one of the minting function's own
        ("SPEND_BRAKE_MINTS_PER_DAY", "-1"),
    ],
)
def test_a_broken_setting_stops_make_run_naming_it(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    # Given the function's environment with one setting it cannot use
    monkeypatch.setenv("OPENAI_API_KEY_SECRET_ID", SECRET_ARN)
    monkeypatch.setenv(variable, value)

    # When make run checks it before serving
    with pytest.raises(SetupError) as refused:
        check_policy({})

    # Then it refuses to start, naming the variable
    assert variable in str(refused.value)


def test_the_shipped_configuration_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the function's environment as the template gives it, with the bundled policy
    monkeypatch.setenv("OPENAI_API_KEY_SECRET_ID", SECRET_ARN)
    for variable in ("SECRET_CACHE_TTL_SECONDS", "UPSTREAM_READ_TIMEOUT_SECONDS", "SPEND_BRAKE_MINTS_PER_DAY"):
        monkeypatch.delenv(variable, raising=False)

    # When make run checks it, then nothing is refused
    check_policy({})
