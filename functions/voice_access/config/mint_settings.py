"""The minting function's settings: the service's (settings.py), and its own, read from its environment once.

Its own are what only a function that mints for callers reads: how long it waits on OpenAI's HTTP answer, the
JWT claim that lists a caller's groups, and the spend brake on mints. (A supervisor attaches to OpenAI over a
WebSocket and authenticates no caller.)
"""

import functools
import os
from collections.abc import Mapping
from typing import NamedTuple

from voice_access.config.settings import (
    Settings,
    SettingsError,
    Variables,
    function_settings,
    integer,
    printable,
    refused,
    upstream_timeouts,
)


class MintSettings(NamedTuple):
    service: Settings
    upstream_connect_timeout_seconds: float = 2.0
    upstream_read_timeout_seconds: float = 8.0
    # The JWT claim that lists the caller's groups, for profiles that require one.
    groups_claim: str = "cognito:groups"
    # SpendBrakeMintsPerDay: 0 for none beyond the policy's own spend_brake.
    spend_brake_mints_per_day: int = 0

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> "MintSettings":
        """The service's settings and the function's own, every problem with either named at once."""
        return function_settings(environment, cls._read)

    @classmethod
    def _read(cls, service: Settings, variables: Variables) -> "MintSettings":
        defaults, read = cls(service), variables.read
        return cls(
            service,
            **upstream_timeouts(
                variables, defaults.upstream_connect_timeout_seconds, defaults.upstream_read_timeout_seconds
            ),
            groups_claim=read("GROUPS_CLAIM", _claim_name, defaults.groups_claim),
            spend_brake_mints_per_day=read("SPEND_BRAKE_MINTS_PER_DAY", integer(0, 10**9), 0),
        )


_claim_name = printable(256, "a claim name such as cognito:groups (printable, no surrounding spaces)")


@functools.cache
def get_settings() -> MintSettings:
    return MintSettings.from_environment(os.environ)


def checked_settings() -> MintSettings:
    """The function's settings; ServiceMisconfigured (logged and counted) when the environment is broken."""
    try:
        return get_settings()
    except SettingsError as exc:
        raise refused("settings_invalid", str(exc)) from None
