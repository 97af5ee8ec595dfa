"""The demo page (web/) from `make run` in a real headless Chromium with a fake microphone: a person signs in as a
development user, connects a voice call to the local Realtime peer with a client secret minted for them, hears
the model (the inbound track's bytes grow), asks for a response, and hangs up; a profile that needs another group
and an exhausted quota are explained on the page. The service may open the session instead (a Realtime call, or
a GPT-Live session whose profile locks its instructions): then no client secret passes the page's network at all.
tests/browser/demo.mjs runs the page; no token and no client secret may appear in its DOM or console.

SCREENSHOT=docs/demo.png saves the connected page there (the README's picture); otherwise it goes to a temporary
folder, so that a test run leaves the repository as it was.
"""

import http.client
import json
import os
import re
import statistics
from collections.abc import Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from openai_stub.realtime_peer import INPUT_TRANSCRIPT, LIVE_TRANSCRIPT, REPLY_TRANSCRIPT
from tests.browsers import PINNED, chromium_path, run_driver
from tests.docs import code_blocks
from tests.local_run import LocalService, local_run
from tests.paths import ROOT

DRIVER = ROOT / "tests" / "browser" / "demo.mjs"
POLICY = json.loads((ROOT / "functions" / "voice_access" / "config" / "policy.json").read_text())
ASSISTANT = POLICY["profiles"]["assistant"]
VOICE = POLICY["profiles"]["voice"]  # the browser's profile for calls the service opens
LIVE = POLICY["profiles"]["live"]
# The page's ways of opening a session, as it names them
WAYS = {"client_secret": "client secret", "call": "call", "live_session": "Live session"}
TRANSCRIPTION = "audio.input.transcription.model"
# Each a secret's shape: a client secret, or a JWT's header and payload.
CLIENT_SECRET = re.compile(r"\bek_[A-Za-z0-9]")
JWT = re.compile(r"eyJ[\w-]{6,}\.eyJ[\w-]{6,}")
# The README's example names make run's default ports; the test puts this run's in their place.
README_API = "http://127.0.0.1:3000/v1"
README_PEER = "http://127.0.0.1:3002/v1/realtime/calls"
REFUSED_FETCH = "error: Failed to load resource: the server responded with a status of "
# What a response.create brings (GA names): the response opens, its transcript streams, its audio ends, it is done.
RESPONSE_EVENTS = [
    "response.created",
    "response.output_item.added",
    "response.output_audio_transcript.delta",
    "response.output_audio_transcript.done",
    "response.output_audio.done",
    "response.done",
]


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path(("playwright-core",))


@pytest.fixture(scope="module")
def make_run() -> Iterator[LocalService]:
    """`make run` as a developer starts it: the local OpenAI stub and its Realtime peer, the embedded sign-in."""
    with local_run() as service:
        yield service


def demo_url(service: LocalService) -> str:
    return service.printed_url("the demo page")


def drive(chromium: str, url: str, scenario: str, **settings: Any) -> dict[str, Any]:
    """Runs a scenario of tests/browser/demo.mjs; what the page showed, checked for secrets."""
    seen = run_driver(DRIVER, {"executablePath": chromium, "url": url, "scenario": scenario, **settings})
    assert seen["failure"] is None, seen["failure"]
    # The page showed neither the user's token nor a client secret, in its DOM, its fields or its console
    assert seen["secretShown"] is False
    shown = "\n".join([seen["dom"], *seen["console"]])
    assert not CLIENT_SECRET.search(shown), "something shaped like a client secret is on the page"
    assert not JWT.search(shown), "something shaped like a user's token is on the page"
    # And nothing failed on it but the refusals a scenario asks for (Chromium notes each refused fetch itself)
    errors = [line for line in seen["console"] if line.startswith(("error", "pageerror"))]
    assert [line for line in errors if not line.startswith(REFUSED_FETCH)] == [], errors
    return seen


def test_a_signed_in_user_talks_to_the_local_peer_with_the_profiles_voice_and_instructions(
    chromium: str, make_run: LocalService, tmp_path: Path
) -> None:
    # Given the demo page of `make run`, and a development user without groups
    screenshot = Path(os.environ.get("SCREENSHOT") or tmp_path / "demo.png").absolute()

    # When they sign in, pick a voice of the default profile and turn on transcription, Connect, ask for a
    # response and hang up
    seen = drive(
        chromium, demo_url(make_run), "call", user="dana", voice="cedar", transcribe=True, screenshot=str(screenshot)
    )

    # Then the page offered the profiles this user may use, the default chosen, and transcription with the first
    # model the profile allows (read from GET /v1/realtime/profiles)
    result = seen["result"]
    assert result["signedIn"]["profiles"] == ["assistant"]
    transcription_model = ASSISTANT["settable"][TRANSCRIPTION]["enum"][0]
    assert result["transcribeOffered"] == f"({transcription_model})"
    # And before the call no session details showed (not even their labels)
    assert result["sessionBefore"]["visible"] is False
    # And the call connected, with the session the policy chose: the voice picked, the profile's instructions,
    # the user's speech transcribed
    assert result["afterConnect"]["state"] == "connected", result["afterConnect"]
    assert result["session"] == {
        "voice": "cedar",
        "instructions": ASSISTANT["fixed"]["instructions"],
        "model": ASSISTANT["settable"]["model"]["default"],
        "transcription": transcription_model,
    }
    # And the model's audio arrived on the inbound track
    before, after = result["bytes"]
    assert after > before
    # And the response's events came in order over the oai-events channel, with a transcript on the page
    events = result["events"]
    assert events[0] == "session.created"
    assert set(RESPONSE_EVENTS) <= set(events)
    first = {event: events.index(event) for event in RESPONSE_EVENTS}
    assert first["response.created"] < first["response.output_item.added"] < first["response.output_audio.done"]
    assert first["response.output_audio_transcript.delta"] < first["response.output_audio_transcript.done"]
    assert max(first.values()) == first["response.done"]
    # And, transcription on, the user's turn shows first: the peer's fixed transcript, then the model's line
    assert result["userLines"] == [INPUT_TRANSCRIPT]
    assert result["transcript"].strip().startswith(f"You: {INPUT_TRANSCRIPT}Model:")
    # And the hang-up ended the call, the page ready for another
    assert result["afterHangUp"] == {
        "state": "ready",
        "status": "Call ended.",
        "problem": "",
        "connectDisabled": False,
    }
    # And the ended call's details went with it
    assert result["sessionAfter"]["visible"] is False
    assert set(result["sessionAfter"]["values"]) == {""}
    # And the token and the client secret were both there to look for
    assert seen["secretsCaptured"] == 2
    assert [(answer["path"], answer["status"]) for answer in seen["answers"]] == [
        ("/local/sign-in", HTTPStatus.OK),
        ("/v1/realtime/client_secrets", HTTPStatus.OK),
    ]
    assert screenshot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    print(f"demo: Connect to session.created took {result['connectMs']} ms")


def test_with_transcription_off_the_page_shows_no_transcript_of_the_user(chromium: str, make_run: LocalService) -> None:
    # Given the demo page of `make run`, and a user who leaves "Transcribe what I say" off
    # When they Connect and ask for a response
    seen = drive(chromium, demo_url(make_run), "call", user="gil")

    # Then the session has no transcription, and the transcript shows the model's line only
    result = seen["result"]
    assert result["afterConnect"]["state"] == "connected", result["afterConnect"]
    assert result["session"]["transcription"] == "off"
    assert "response.done" in result["events"]
    assert result["userLines"] == []
    assert result["transcript"].strip().startswith("Model:")


def test_a_profile_that_needs_another_group_is_explained(chromium: str, make_run: LocalService) -> None:
    # Given a user without the premium group, following a link to the demo that picks the premium profile
    url = f"{demo_url(make_run)}?profile=premium"

    # When they sign in and Connect
    seen = drive(chromium, url, "forbidden", user="erin")

    # Then the page says the profile is not offered to them, and why the API refused it
    result = seen["result"]
    assert result["signedIn"]["profiles"] == ["assistant", "premium"]
    assert result["chosen"] == "premium"
    assert result["afterConnect"] == {
        "state": "ready",
        "status": 'The profile "premium" needs another group: sign in as a member of it, or pick another profile.',
        "problem": "forbidden",
        "connectDisabled": False,
    }
    assert seen["answers"][-1]["status"] == HTTPStatus.FORBIDDEN


def test_an_exhausted_quota_shows_a_countdown_from_retry_after(chromium: str, tmp_path: Path) -> None:
    # Given `make run` with a policy allowing each caller one client secret an hour of the assistant profile (and
    # no transcription)
    policy = tmp_path / "policy.json"
    document = json.loads(json.dumps(POLICY))
    document["profiles"]["assistant"]["limits"] = {"per_caller": [{"mints": 1, "seconds": 3600}]}
    del document["profiles"]["assistant"]["settable"][TRANSCRIPTION]
    policy.write_text(json.dumps(document))
    with local_run(POLICY=str(policy)) as service:
        # When a user connects, hangs up, and connects again
        seen = drive(chromium, demo_url(service), "quota", user="frank")

    # Then the first call connected, and the second was refused with a countdown from Retry-After
    result = seen["result"]
    assert result["first"]["state"] == "connected"
    second = result["second"]
    assert second["problem"] == "quota"
    assert second["connectDisabled"] is True
    # in the API's own words, its wait counting down once ("Try again in 59 min 59 s."), not twice
    countdown = r"Rate limit reached for profile 'assistant': .+\. Try again in (\d+ min )?\d+ s\."
    assert re.fullmatch(countdown, second["status"]), second["status"]
    assert re.fullmatch(countdown, result["laterStatus"]), result["laterStatus"]
    assert second["status"].lower().count("try again") == 1
    refused = seen["answers"][-1]
    assert refused["status"] == HTTPStatus.TOO_MANY_REQUESTS
    assert 0 < result["secondsLeft"] <= int(refused["retryAfter"]) <= 3600
    # And it counts down
    assert result["later"] < result["secondsLeft"]
    # And a profile that lets the app set no transcription model offers no transcription
    assert result["transcribe"] == {"disabled": True, "offered": "(not offered by this profile)"}


def test_a_link_cannot_send_the_token_elsewhere_when_the_page_has_a_config_json(
    chromium: str, make_run: LocalService
) -> None:
    # Given make run's demo page, whose config.json names its API, and a link that names other hosts for everything
    elsewhere = "http://127.0.0.1:1"
    query = urlencode(
        {
            "apiBaseUrl": f"{elsewhere}/v1",
            "realtimeUrl": f"{elsewhere}/v1/realtime/calls",
            "issuer": f"{elsewhere}/pool",
            "clientId": "theirs",
        }
    )

    # When a person follows it, signs in and Connects
    seen = drive(chromium, f"{demo_url(make_run)}?{query}", "call", user="hana")

    # Then the page says it ignored those settings, and the call went to make run's API and peer, nothing elsewhere
    result = seen["result"]
    assert result["signedIn"]["ignored"] == (
        "Ignored from this link: apiBaseUrl, realtimeUrl, issuer, clientId. "
        "This page's config.json says where your sign-in goes."
    )
    assert result["afterConnect"]["state"] == "connected", result["afterConnect"]
    assert [url for url in seen["requested"] if url.startswith(elsewhere + "/")] == []
    assert f"{make_run.url}/v1/realtime/client_secrets" in seen["requested"]


def test_hang_up_while_connecting_cancels_the_call_and_connect_works_again(
    chromium: str, make_run: LocalService
) -> None:
    # Given a signed-in user
    # When they hang up while the client secret is minted, then while the SDP offer is with the peer, then get an
    # answer the page cannot use, and at last Connect
    seen = drive(chromium, demo_url(make_run), "cancelled", user="ivan")

    # Then each hang-up left the page ready to Connect, with no error (drive fails on any uncaught page error)
    result = seen["result"]
    ended = {"state": "ready", "status": "Call ended.", "problem": "", "connectDisabled": False}
    assert result["whileMinting"] == ended
    assert result["whileOffering"] == ended
    # And the unusable answer is said, the page ready again
    assert result["badAnswer"]["state"] == "ready"
    assert result["badAnswer"]["problem"] == "failed"
    assert result["badAnswer"]["connectDisabled"] is False
    # And the last Connect opened a call: the only one, the cancelled attempts opened none
    assert result["later"]["state"] == "connected", result["later"]
    states = [state for i, state in enumerate(result["states"]) if i == 0 or result["states"][i - 1] != state]
    assert states.count("connected") == 1
    assert states[-3:] == ["connecting", "connected", "ready"]
    offers = [url for url in seen["requested"] if url.endswith("/realtime/calls")]
    assert len(offers) == 3  # the one held while hanging up, the unusable answer's, the last call's


def test_the_local_sign_in_answers_only_requests_addressed_to_the_page_from_its_own_origin(
    make_run: LocalService,
) -> None:
    # Given make run's demo page, and a sign-in request as its own page sends it
    port = urlsplit(demo_url(make_run)).port
    assert port
    body = json.dumps({"user": "jo", "groups": []})

    def sign_in(host: str, origin: str | None) -> tuple[int, dict[str, Any]]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Host": host, "Content-Type": "application/json"}
        if origin is not None:
            headers["Origin"] = origin
        try:
            connection.request("POST", "/local/sign-in", body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, json.loads(answer.read())
        finally:
            connection.close()

    # When requests name another host (a rebound DNS name), or come from another page's origin
    rebound = sign_in(f"evil.example:{port}", f"http://evil.example:{port}")
    other_port = sign_in(f"127.0.0.1:{port + 1}", None)
    other_origin = sign_in(f"127.0.0.1:{port}", "http://evil.example")

    # Then each is refused, saying where to sign in, and hands no token
    for status, answer in (rebound, other_port, other_origin):
        assert status == HTTPStatus.FORBIDDEN
        assert set(answer) == {"error"}
        assert answer["error"]["message"].startswith(
            f"sign in from the demo page itself: open http://127.0.0.1:{port}/"
        )
    # And the page's own requests, as 127.0.0.1 or localhost, with or without an Origin, are answered
    for host, origin in ((f"127.0.0.1:{port}", None), (f"localhost:{port}", f"http://localhost:{port}")):
        status, answer = sign_in(host, origin)
        assert status == HTTPStatus.OK
        assert sorted(answer) == ["access_token", "token_type"]


def test_with_an_issuer_in_the_query_string_sign_in_goes_there_with_pkce(chromium: str, make_run: LocalService) -> None:
    # Given the page without a config.json, a deployed stack's settings in its query string, its issuer an OIDC
    # provider's
    issuer = "https://issuer.example.test/pool"
    query = urlencode(
        {
            "apiBaseUrl": "https://abc123.execute-api.eu-west-1.amazonaws.com/v1",
            "realtimeUrl": "https://api.openai.com/v1/realtime/calls",
            "issuer": issuer,
            "clientId": "demo-client",
        }
    )
    page = demo_url(make_run)

    # When a person presses Sign in
    seen = drive(chromium, f"{page}?{query}", "oidc")

    # Then the page, which has no config.json (the driver's route), says where the link sends the sign-in and token
    # And the page (oidc-client-ts) sends them to the issuer's authorization endpoint: the code flow with PKCE
    assert seen["result"] == {
        "destination": (
            "This link's settings send your sign-in and token to API: https://abc123.execute-api.eu-west-1.amazonaws.com,"
            " sign-in: https://issuer.example.test, calls: https://api.openai.com. Sign in only if you trust them."
        ),
        "authorize": "https://issuer.example.test/oauth2/authorize",
        "clientId": "demo-client",
        "redirectUri": page,
        "responseType": "code",
        "scope": "openid email profile",
        "codeChallengeMethod": "S256",
        "codeChallenge": True,
        "state": True,
    }


def test_the_vendored_sign_in_library_is_the_pinned_npm_package() -> None:
    # Given web/vendor, which a deployed page serves as it is, and the npm packages package.json pins
    vendored = {
        "oidc-client-ts.js": ROOT / "node_modules" / "oidc-client-ts" / "dist" / "esm" / "oidc-client-ts.js",
        "jwt-decode.js": ROOT / "node_modules" / "jwt-decode" / "build" / "esm" / "index.js",
    }
    manifest = ROOT / "node_modules" / "oidc-client-ts" / "package.json"
    if not manifest.is_file():
        pytest.skip("node_modules has no oidc-client-ts: run `npm ci` in the repository root")
    assert json.loads(manifest.read_text())["version"] == PINNED["oidc-client-ts"], "run `npm ci`"

    # Then each vendored file is the package's own ES module build, byte for byte
    for name, source in vendored.items():
        assert (ROOT / "web" / "vendor" / name).read_bytes() == source.read_bytes(), (
            f"web/vendor/{name} differs from {source.relative_to(ROOT)}: copy it again"
        )


def test_the_readmes_example_of_an_app_of_ones_own_calls_the_local_peer(chromium: str, make_run: LocalService) -> None:
    # Given the README's example for an app of one's own, its URLs those of this make run, on a page whose
    # origin make run allows, and a token from `make token`
    [example] = [block for block in code_blocks("js") if "oai-events" in block]
    realtime = make_run.printed_url("Realtime calls (WebRTC")
    for readme_url, local_url in ((README_API, f"{make_run.url}/v1"), (README_PEER, realtime)):
        assert example.count(readme_url) == 1, f"the README's example no longer names {readme_url}"
        example = example.replace(readme_url, local_url)

    # When the page runs it with the user's token as its userAccessToken
    seen = drive(chromium, demo_url(make_run), "readme", source=example, token=make_run.token())

    # Then the call opened at the local peer, with the session and the response's events logged
    logged = seen["result"]["logged"]
    assert logged[0] == "session.created"
    assert {"response.created", "response.output_audio_transcript.done", "response.done"} <= set(logged)


def test_a_refused_token_asks_to_sign_in_again_and_a_refused_client_secret_to_connect_again(
    chromium: str, make_run: LocalService
) -> None:
    # Given a signed-in user whose token, and then whose client secret, the servers refuse (expired: the driver
    # swaps each for a stale one on its way)
    stale = {"expiredToken": "a-token-that-expired", "expiredSecret": "ek_" + "0" * 24}

    # When they Connect, sign in again, and Connect again
    seen = drive(chromium, demo_url(make_run), "refused", user="gail", **stale)

    # Then the API's 401 signs them out and asks them to sign in again
    result = seen["result"]
    assert result["tokenRefused"] == {
        "state": "signed-out",
        "status": "Your sign-in has expired or was not accepted: sign in again.",
        "problem": "sign-in",
        "connectDisabled": True,
    }
    # And the local peer's 401 for the client secret asks for a new one, the user still signed in
    assert result["secretRefused"] == {
        "state": "ready",
        "status": "The client secret was refused (expired or unknown): Connect again for a new one.",
        "problem": "secret",
        "connectDisabled": False,
    }


def posted_to_the_api(seen: dict[str, Any], service: LocalService) -> list[tuple[str, int | None, str | None]]:
    """Each POST of the page to the API: its path, its answer's status, and the credential it carried."""
    api = f"POST {service.url}"
    return [
        (exchange["request"].removeprefix(api), exchange["status"], exchange["bearer"])
        for exchange in seen["network"]
        if exchange["request"].startswith(api + "/")
    ]


def client_secrets_passed(seen: dict[str, Any]) -> list[str]:
    """The requests of the page whose headers, body or answer (headers and body) hold something shaped like a
    client secret."""
    return [exchange["request"] for exchange in seen["network"] if exchange["clientSecret"]]


def test_a_call_opened_by_the_service_reaches_the_browser_without_a_client_secret(
    chromium: str, make_run: LocalService
) -> None:
    # Given a signed-in user without groups, who opens the session as a "call opened by the service"
    # When they Connect, ask for a response, try to change the instructions and hang up
    seen = drive(chromium, demo_url(make_run), "opened", user="kai", way="call", voice="cedar")

    # Then the page offered each way (a profile open to the user allows each), and for calls the profile that
    # may be opened as one
    result = seen["result"]
    assert result["ways"] == [{"way": way, "disabled": False} for way in ("client_secret", "call", "live_session")]
    assert result["offered"] == ["voice"]
    # And the call connected with the session the policy chose, the page saying it was opened as a call, with the
    # call's id from the service's Location
    assert result["afterConnect"]["state"] == "connected", result["afterConnect"]
    session = result["session"]
    assert (session["way"], session["wayKey"]) == ("call", "call")
    assert re.fullmatch(r"rtc_[0-9a-f]{32}", session["id"]), session["id"]
    assert (session["voice"], session["instructions"], session["model"]) == (
        "cedar",
        VOICE["fixed"]["instructions"],
        VOICE["settable"]["model"]["default"],
    )
    # And the model's response arrived, its transcript on the page
    assert result["events"][0] == "session.created"
    assert set(RESPONSE_EVENTS) <= set(result["events"])
    assert result["transcript"] == f"Model: {REPLY_TRANSCRIPT}"
    # And the browser held no client secret: its offer went to the service with the user's token (nothing to the
    # mint, nothing to the peer), and no request or answer of the page, headers or body, carried one
    assert posted_to_the_api(seen, make_run) == [("/v1/realtime/calls", HTTPStatus.CREATED, "jwt")]
    assert make_run.printed_url("Realtime calls (WebRTC") not in seen["requested"]
    assert client_secrets_passed(seen) == []
    assert seen["secretsCaptured"] == 1  # the user's token, looked for in the DOM and the console
    # And the session.update the browser sent was taken by OpenAI (nothing locks a Realtime session), then undone
    # by the call's supervisor on its sideband: a second session.updated, the profile's instructions back on the
    # page, the call going on
    assert result["answer"][0] == "session.updated"
    after_change = result["events"][result["events"].index("response.done") :]
    assert after_change.count("session.updated") >= 2, after_change
    assert result["afterRestore"]["state"] == "connected"
    assert result["afterRestore"]["session"]["instructions"] == VOICE["fixed"]["instructions"]
    # And the supervisor logged the refused change by the mint's own words for it, naming the field, not its value
    refused = make_run.line(r"session change refused")
    assert "session.instructions" in refused
    assert "Model: " not in refused
    # And Hang up ended the call, its details gone
    assert result["afterHangUp"] == {
        "state": "ready",
        "status": "Call ended.",
        "problem": "",
        "connectDisabled": False,
        "visible": False,
    }


def test_a_gpt_live_session_opened_by_the_service_keeps_the_profiles_instructions(
    chromium: str, make_run: LocalService
) -> None:
    # Given a signed-in user without groups, who opens the session as a "GPT-Live session opened by the service"
    # When they Connect, hear the model, try to change the instructions and hang up
    seen = drive(chromium, demo_url(make_run), "opened", user="lee", way="live_session", voice="cedar")

    # Then the page offered the profile opened as a Live session
    result = seen["result"]
    assert result["offered"] == ["live"]
    # And the session started with the session the policy chose, the page saying it was opened as a Live session,
    # with its id
    assert result["afterConnect"] == {
        "state": "connected",
        "status": "Connected: talk.",
        "problem": "",
        "connectDisabled": True,
    }
    session = result["session"]
    assert (session["way"], session["wayKey"]) == ("Live session", "live_session")
    assert re.fullmatch(r"live_[0-9a-f]{32}", session["id"]), session["id"]
    assert (session["voice"], session["instructions"], session["model"]) == (
        "cedar",
        LIVE["fixed"]["instructions"],
        LIVE["settable"]["model"]["default"],
    )
    # And the model's words arrived as GPT-Live's transcript deltas, then its usage, on the page
    events = result["events"]
    assert events[0] == "session.started"
    assert events.index("session.output_transcript.delta") < events.index("session.usage.updated")
    assert result["transcript"] == f"Model: {LIVE_TRANSCRIPT}"
    assert re.fullmatch(r"\d+ s \(\d+ s active\)", result["usage"]), result["usage"]
    # And the browser held no client secret: its offer went to the service with the user's token, and no request
    # or answer of the page, headers or body, carried one
    assert posted_to_the_api(seen, make_run) == [("/v1/live/sessions", HTTPStatus.OK, "jwt")]
    assert client_secrets_passed(seen) == []
    assert seen["secretsCaptured"] == 1
    # And the session.update the page sent was refused with an error event, the call going on, the session
    # unchanged: no session.updated, the instructions the profile's
    assert result["answer"] == ["error"]
    assert result["afterChange"]["state"] == "connected"
    assert result["afterChange"]["problem"] == "event"
    assert "'session.update' is not allowed on this data channel" in result["afterChange"]["status"]
    assert result["afterChange"]["session"]["instructions"] == LIVE["fixed"]["instructions"]
    assert "session.updated" not in events
    # And Hang up asked the session to close: its session.closed ended it, and the session's last record (from
    # session.closed) still says the profile's instructions
    assert events[-1] == "session.closed"
    assert result["afterHangUp"] == {
        "state": "ready",
        "status": "Session closed.",
        "problem": "",
        "connectDisabled": False,
        "visible": True,
    }
    assert result["sessionAfter"]["instructions"] == LIVE["fixed"]["instructions"]


def test_connect_to_the_first_session_event_for_each_way_side_by_side(chromium: str, make_run: LocalService) -> None:
    # Given a signed-in user
    # When they Connect each way in turn (client secret, call, Live session), four rounds, the order turning
    rounds = 4  # a unit a round of each profile's ten a minute (assistant, voice, live)
    seen = drive(chromium, demo_url(make_run), "timings", user="mo", rounds=rounds)

    # Then each connected every time, and the page measured each from Connect to the session's first event
    # (session.created, or GPT-Live's session.started)
    measured = seen["result"]["measured"]
    assert {way: len(times) for way, times in measured.items()} == dict.fromkeys(WAYS, rounds), seen["result"]
    # And client secrets passed the network for the client secret way only: the mint's answer and the call opened
    # with it (the search finds what it looks for)
    passed = {request.split(" ")[1] for request in client_secrets_passed(seen)}
    assert passed == {f"{make_run.url}/v1/realtime/client_secrets", make_run.printed_url("Realtime calls (WebRTC")}
    figures = "; ".join(f"{WAYS[way]} {times} (median {statistics.median(times):g})" for way, times in measured.items())
    print(f"demo: Connect to the first session event, ms: {figures}")
