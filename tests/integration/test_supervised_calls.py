"""The policy held for the whole call, end to end: `make run` (the function, its supervisor started as Lambda starts
an asynchronous invocation, the backstop schedules, moto, the OpenAI stub and its peer) and the demo page in a
real headless Chromium. The supervisor's own cases, one by one, are tests/unit/test_supervising.py and
tests/integration/test_supervisor_sideband.py; here each runs whole, as a user and an operator meet it."""

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
import urllib3

from openai_stub.realtime_peer import RESPONSE_USAGE
from tests.browsers import chromium_path, run_driver
from tests.local_run import LocalService, local_run
from tests.paths import ROOT
from voice_access.domain.policy.model import Price
from voice_access.domain.pricing import cost_micro_usd, usage_of_response

DRIVER = ROOT / "tests" / "browser" / "demo.mjs"
SHIPPED = ROOT / "functions" / "voice_access" / "config" / "policy.json"
# Well past any call here (the longest is the backstop's: 5 s and its 30 s margin), well short of the stub's own
# 300 s: what ends a call here is the supervisor or its backstop, never the peer.
ENDS_WITHIN_MS = 120_000
BRIEF_SECONDS = 5
# Less than one response of the peer costs at the voice model's prices (21,729 micro-dollars): one spends it.
METERED_USD = 0.02


def _policy(into: Path) -> Path:
    """The shipped policy, with two profiles opened as calls beside its own: `brief` (a call of 5 seconds at
    most) and `metered` (a day's budget that one response spends)."""
    policy = json.loads(SHIPPED.read_text())
    voice = policy["profiles"]["voice"]
    policy["profiles"]["brief"] = {**voice, "max_call_seconds": BRIEF_SECONDS, "description": "5-second calls"}
    limits = {**voice["limits"], "budgets": [{"usd": METERED_USD, "seconds": 86400}]}
    policy["profiles"]["metered"] = {**voice, "limits": limits, "description": "a budget of 2 cents a day"}
    path = into / "policy.json"
    path.write_text(json.dumps(policy))
    return path


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path(("playwright-core",))


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalService]:
    with local_run(POLICY=str(_policy(tmp_path_factory.mktemp("policy")))) as service:
        yield service


def supervised(chromium: str, service: LocalService, user: str, profile: str, responses: int = 0) -> dict[str, Any]:
    """The demo page's call with ``profile``, opened by ``user``, until it ends; then a second Connect."""
    seen = run_driver(
        DRIVER,
        {
            "executablePath": chromium,
            "url": service.printed_url("the demo page"),
            "scenario": "supervised",
            "user": user,
            "way": "call",
            "profile": profile,
            "responses": responses,
            "endsWithinMs": ENDS_WITHIN_MS,
        },
    )
    assert seen["failure"] is None, seen["failure"]
    assert seen["secretShown"] is False
    return dict(seen["result"])


def call_ended(service: LocalService, call_id: str) -> dict[str, str]:
    """The fields of the "call ended" line `make run` printed for ``call_id`` (its short terminal: ``key=value``
    pairs); the lines before it (other calls' among them) are passed over."""
    line = service.line(rf"INFO call ended .*call_id={re.escape(call_id)}\b")
    return dict(re.findall(r"(\w+)=(\S+)", line))


def the_other_side_hung_up(result: dict[str, Any]) -> None:
    assert result["afterConnect"]["state"] == "connected", result["afterConnect"]
    assert result["ended"]["state"] == "ready"
    assert result["ended"]["problem"] == "ended"
    assert result["ended"]["status"] == "The call ended: the other side hung up."


def test_a_call_ends_at_its_profiles_maximum_length(chromium: str, make_run: LocalService) -> None:
    # Given a profile whose calls last 5 seconds at most
    # When a user connects to it from the page and says nothing
    result = supervised(chromium, make_run, "max", "brief")

    # Then the call was ended from the service's side, its supervisor saying why: the profile's maximum length,
    # reached (never before it: the seconds metered are the call's, from its open)
    the_other_side_hung_up(result)
    ended = call_ended(make_run, result["session"]["id"])
    assert ended["reason"] == "max_length", ended
    assert ended["profile"] == "brief"
    assert float(ended["seconds"]) >= BRIEF_SECONDS
    # And the user may call again: the ended call gave its slot back
    assert result["again"]["state"] == "connected", result["again"]


def test_a_call_that_spends_its_budget_ends_and_the_next_is_refused_naming_it(
    chromium: str, make_run: LocalService
) -> None:
    # Given a profile whose daily budget is less than one response of the peer costs
    # When a user connects to it from the page and asks for one response
    result = supervised(chromium, make_run, "meter", "metered", responses=1)

    # Then the response was metered at exactly its cost at the policy's prices, which spent the budget, and the
    # supervisor ended the call
    the_other_side_hung_up(result)
    assert "response.done" in result["events"]
    ended = call_ended(make_run, result["session"]["id"])
    assert ended["reason"] == "budget_spent", ended
    policy = json.loads(SHIPPED.read_text())
    model = result["session"]["model"]
    expected = cost_micro_usd(usage_of_response(RESPONSE_USAGE), Price(**policy["prices"][model]))
    assert expected == 21_729  # the peer's usage at gpt-realtime-2's published prices (tests/unit/test_stub_usage.py)
    # And the next call was refused before it reached OpenAI, the page saying which budget and when it frees
    assert result["again"]["problem"] == "quota", result["again"]
    assert "$0.02 per day" in result["again"]["status"]
    # And the user's own usage says so, exact to the micro-dollar
    token = make_run.token("meter")
    usage = urllib3.request(
        "GET", f"{make_run.url}/v1/realtime/usage", headers={"Authorization": f"Bearer {token}"}, retries=False
    )
    assert usage.status == HTTPStatus.OK, usage.data
    metered = next(entry for entry in usage.json()["data"] if entry["profile"] == "metered")
    (budget,) = metered["budgets"]
    assert (budget["unit"], budget["limit"], budget["used"], budget["remaining"]) == (
        "usd",
        METERED_USD,
        expected / 1_000_000,
        0,
    )
    assert metered["calls"]["open"] == 0


def _supervisors(parent: int) -> list[int]:
    """The processes `make run` (``parent``) runs asynchronous invocations in (one per invocation)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent_of_it = int(stat.rpartition(")")[2].split()[1])
        if parent_of_it == parent and b"local.execution_environment" in command:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the supervisor's process in /proc")
def test_a_supervisor_killed_mid_call_is_backstopped(chromium: str, make_run: LocalService) -> None:
    # Given a user on a 5-second call from the page
    outcome: dict[str, Any] = {}
    page = threading.Thread(
        target=lambda: outcome.update(result=supervised(chromium, make_run, "crash", "brief")), daemon=True
    )
    page.start()

    # When its supervisor's execution environment dies mid-call (as a crash, or Lambda's environment lost)
    make_run.line(r"INFO supervising call .*profile=brief")
    # (An earlier test's supervisor may still be finishing its own call's end: it dies too, its call ended already.)
    supervisors = _supervisors(make_run.pid)
    assert supervisors
    for supervisor in supervisors:
        os.kill(supervisor, signal.SIGKILL)

    # Then the call's one-time backstop schedule still ended it (at its maximum length and the backstop's margin),
    # and the page saw the service hang up
    page.join(timeout=ENDS_WITHIN_MS / 1000 + 60)
    assert not page.is_alive()
    the_other_side_hung_up(outcome["result"])
    ended = call_ended(make_run, outcome["result"]["session"]["id"])
    assert ended["reason"] == "backstop", ended
    assert ended["profile"] == "brief"
