"""The supervisor's settings: the service's (settings.py), and its own, read from its environment.

Its own are the timing of its watch over a call: when an invocation hands the call over to its successor, how long
a dropped sideband may take to come back, how often a call's seconds are metered, and how long it waits on OpenAI's
HTTP answer to a hang-up. Read once per invocation (an invocation lasts minutes), so no cache is kept.
"""

from collections.abc import Mapping
from typing import NamedTuple

from voice_access.config.settings import Settings, Variables, function_settings, integer, seconds, upstream_timeouts

# Lambda's longest timeout: no invocation lasts longer.
MAX_INVOCATION_SECONDS = 900


class SupervisorSettings(NamedTuple):
    service: Settings
    # Seconds into an invocation when it starts its successor; None: its timeout less a minute (the context says).
    handover_after_seconds: int | None = None
    sideband_reattach_seconds: float = 10.0
    meter_tick_seconds: float = 15.0
    upstream_connect_timeout_seconds: float = 2.0
    upstream_read_timeout_seconds: float = 5.0

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> "SupervisorSettings":
        """The service's settings and the supervisor's own, every problem with either named at once."""
        return function_settings(environment, cls._read)

    @classmethod
    def _read(cls, service: Settings, variables: Variables) -> "SupervisorSettings":
        defaults, read = cls(service), variables.read
        return cls(
            service,
            handover_after_seconds=read(
                "SUPERVISOR_HANDOVER_AFTER_SECONDS", integer(1, MAX_INVOCATION_SECONDS), defaults.handover_after_seconds
            ),
            sideband_reattach_seconds=read(
                "SIDEBAND_REATTACH_SECONDS", seconds(300), defaults.sideband_reattach_seconds
            ),
            meter_tick_seconds=read("METER_TICK_SECONDS", seconds(300), defaults.meter_tick_seconds),
            **upstream_timeouts(
                variables, defaults.upstream_connect_timeout_seconds, defaults.upstream_read_timeout_seconds
            ),
        )
