"""The guard in conftest.py fails a test whose output shows the API key, a minted client secret, a user's
token or an e-mail address (what it looks for: tests/secret_guard.py)."""

import os

import pytest

from tests.paths import ROOT


def run_in_own_process(
    pytester: pytest.Pytester, *options: str, show_capture: bool = False, **test_files: str
) -> pytest.RunResult:
    """Runs test files with the project's fixtures and hooks (its conftest.py, as a plugin) in a pytest of their
    own process: in this one, this test's own guard would see their log records, leaks and all. Their captured
    output stays out of the report unless `show_capture` (the guard hides a section that shows a secret, and
    would see one it missed)."""
    pytester.makepyfile(**test_files)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "functions")]))
        shown = "--show-capture=all" if show_capture else "--show-capture=no"
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "tests.conftest", shown, *options)


LEAKY_TESTS = """
import json

import pytest

from tests.events import load_event
from tests.keys import TEST_API_KEY
from voice_access.edge.app import lambda_handler
from voice_access.observability import logger


def test_clean():
    logger.info("client secret minted", profile="assistant")


def test_logs_the_api_key():
    logger.info("calling openai", authorization=f"Bearer {TEST_API_KEY}")


def test_prints_the_api_key():
    print(TEST_API_KEY)


@pytest.mark.usefixtures("function_env")
def test_logs_a_minted_secret(lambda_context):
    answer = lambda_handler(load_event("client_secrets.json"), lambda_context)
    logger.info("minted", value=json.loads(answer["body"])["value"])
"""


def test_the_guard_fails_exactly_the_tests_that_leak(pytester: pytest.Pytester) -> None:
    # Given the project's fixtures and four tests, three of which let a secret into the output
    # When they run, in a pytest of their own
    result = run_in_own_process(pytester, test_leaky=LEAKY_TESTS)

    # Then the clean one passes and each leaky one errors in the guard's teardown
    result.assert_outcomes(passed=4, errors=3)
    result.stdout.fnmatch_lines(["*a secret appeared in the output*"])
    result.stdout.no_fnmatch_line("*sk-test-4e1f*")


IDENTITY_TESTS = """
import pytest

from voice_access.observability import logger

# What the JWT header {"alg":"none"} and payload {"sub":"x"} encode to: shaped like a token, signed by no one.
UNSIGNED = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."


def test_clean(user_token):
    user_token("developer", ["premium"])  # signed, and kept out of the output
    print("openai@6.49.0 @pytest.fixture a @ b root@localhost eyJ 3 @ 4.5")
    logger.info("client secret minted", user="5f2c" * 16)


def test_prints_a_user_token(user_token):
    print(user_token())


def test_logs_a_jwt_shaped_value():
    logger.info("caller", authorization=f"Bearer {UNSIGNED}")


def test_logs_a_test_users_address(user_token):
    user_token("alice")
    logger.info("caller", username="alice@example.test")


def test_prints_any_address():
    print("contact: someone.else+tag@mail.company.co.uk")
"""


def test_the_guard_fails_exactly_the_tests_that_show_a_token_or_an_address(pytester: pytest.Pytester) -> None:
    # Given the project's fixtures and five tests, four of which let a user's token or an address into the output
    # When they run, in a pytest of their own
    result = run_in_own_process(pytester, test_identity=IDENTITY_TESTS)

    # Then the clean one passes and each of the others errors in the guard's teardown, saying what it saw
    result.assert_outcomes(passed=5, errors=4)
    result.stdout.fnmatch_lines(["*a user's token (or something shaped like a JWT) appeared in the output*"])
    result.stdout.fnmatch_lines(["*an e-mail address appeared in the output*"])
    # And the report shows neither
    result.stdout.no_fnmatch_line("*eyJ*")
    result.stdout.no_fnmatch_line("*@example.test*")
    result.stdout.no_fnmatch_line("*company.co.uk*")


PIECES_TESTS = r"""
import json
import logging
import urllib.parse

from voice_access.observability import logger

library = logging.getLogger("some.library")


def test_clean(user_token):
    user_token("carol", ["premium"])  # signed, and kept out of the output
    print("100% done, %zz, a%2Fb, " + json.dumps({"name": "café"}))  # decoding these shows no address
    try:
        raise ValueError("no profile named 'premium'")
    except ValueError:
        library.debug("refused", exc_info=True, extra={"profile": "premium"})


def test_logs_a_tokens_payload_alone(user_token):
    logger.info("caller", claims=user_token("dave").split(".")[1])


def test_prints_a_token_in_two_pieces(user_token):
    token = user_token("erin")
    cut = token.index(".") + 5  # the first piece ends one character into the payload: only its start shows it
    print(token[:cut])
    print(token[cut:])


def test_a_library_logs_a_token_in_its_exception(user_token):
    token = user_token("frank")
    try:
        raise ValueError(f"bad token {token}")
    except ValueError:
        library.debug("failed", exc_info=True)


def test_a_library_logs_a_token_as_an_extra_field(user_token):
    library.debug("calling", extra={"authorization": f"Bearer {user_token('grace')}"})


def test_prints_a_percent_encoded_address():
    print("callback?login_hint=" + urllib.parse.quote("heidi@example.test", safe=""))


def test_prints_a_json_escaped_address():
    print(r'{"username": "ivan\u0040example.test"}')
"""


def test_the_guard_fails_the_tests_that_show_a_piece_of_a_token_or_an_encoded_address(
    pytester: pytest.Pytester,
) -> None:
    # Given the project's fixtures and seven tests, six of which show a token's piece, a token in a library's
    # record, or an address in an encoded form
    # When they run, in a pytest of their own
    result = run_in_own_process(pytester, test_pieces=PIECES_TESTS)

    # Then the clean one passes and each of the others errors in the guard's teardown
    result.assert_outcomes(passed=7, errors=6)
    for test, saw in [
        ("test_logs_a_tokens_payload_alone", "a user's token"),
        ("test_prints_a_token_in_two_pieces", "a user's token"),
        ("test_a_library_logs_a_token_in_its_exception", "a user's token"),
        ("test_a_library_logs_a_token_as_an_extra_field", "a user's token"),
        ("test_prints_a_percent_encoded_address", "an e-mail address"),
        ("test_prints_a_json_escaped_address", "an e-mail address"),
    ]:
        result.stdout.fnmatch_lines([f"*ERROR at teardown of {test} *", f"{saw} *"], consecutive=True)
    # And the report shows neither
    result.stdout.no_fnmatch_line("*eyJ*")
    result.stdout.no_fnmatch_line("*example.test*")


SUBPROCESS_TESTS = r"""
import json
import subprocess
import sys

import pytest

from tests.events import load_event
from voice_access.edge.app import lambda_handler


def write(fd, text):
    # The value goes in as an argument and out on the file descriptor, past sys.stdout and sys.stderr.
    subprocess.run([sys.executable, "-c", "import os, sys; os.write(int(sys.argv[1]), sys.argv[2].encode())",
                    str(fd), text], check=True)


def test_clean(user_token):
    user_token("kate")  # signed, and kept out of the output
    write(1, "openai@6.49.0 eyJ 3 @ 4.5\n")
    write(2, "warning: nothing to see\n")


def test_a_subprocess_writes_a_token_to_stderr(user_token):
    write(2, user_token("leo") + "\n")


def test_a_subprocess_writes_an_address_to_stdout(user_token):
    user_token("mallory")
    write(1, "signed in as mallory@example.test\n")


def test_fails_after_a_subprocess_writes_a_token(user_token):
    write(2, user_token("nina") + "\n")
    assert False, "failed for its own reason"


@pytest.mark.usefixtures("function_env")
def test_a_subprocess_writes_a_minted_secret(lambda_context):
    answer = lambda_handler(load_event("client_secrets.json"), lambda_context)
    write(2, json.loads(answer["body"])["value"] + "\n")  # known to the guard only once the stub is torn down
"""


def test_the_guard_fails_a_test_whose_subprocess_writes_a_secret_to_a_file_descriptor(
    pytester: pytest.Pytester,
) -> None:
    # Given the project's fixtures and five tests that run a subprocess writing to file descriptor 1 or 2,
    # four of which write a user's token, an address or a minted client secret
    # When they run, in a pytest of their own that shows every test's captured output
    result = run_in_own_process(pytester, "-rA", show_capture=True, test_subprocess=SUBPROCESS_TESTS)

    # Then the clean one passes, the one that fails for its own reason still fails, and each leaky one errors
    # in its teardown, saying what it saw
    result.assert_outcomes(passed=4, failed=1, errors=4)
    for test, saw in [
        ("test_a_subprocess_writes_a_token_to_stderr", "a user's token"),
        ("test_a_subprocess_writes_an_address_to_stdout", "an e-mail address"),
        ("test_fails_after_a_subprocess_writes_a_token", "a user's token"),
        ("test_a_subprocess_writes_a_minted_secret", "a secret appeared in the output: 1 value(s), e.g. "),
    ]:
        result.stdout.fnmatch_lines([f"*ERROR at teardown of {test} *", f"{saw}*"], consecutive=True)
    # And the clean one's output is shown, but no report shows the secrets: their sections say they were hidden
    result.stdout.fnmatch_lines(["*Captured stderr call*", "warning: nothing to see"])
    result.stdout.fnmatch_lines(["*Captured stderr call*", "[[]the secret guard hid this output: a user's token*"])
    result.stdout.no_fnmatch_line("*eyJ[A-Za-z0-9]*")
    result.stdout.no_re_match_line(r".*ek_[0-9a-f]{32}")  # learnt at teardown, hidden in the call's report too
    result.stdout.no_fnmatch_line("*example.test*")


SDP_TESTS = """
from voice_access.observability import logger

OFFER = "v=0\\r\\na=ice-ufrag:abcd\\r\\na=candidate:1 1 udp 2122 192.0.2.7 50000 typ host\\r\\n"


def test_clean():
    logger.info("session opened", way="live_session", profile="live", sdp_bytes=len(OFFER))


def test_logs_an_offer():
    logger.info("session opened", offer=OFFER)


def test_logs_a_candidate_in_its_message():
    logger.warning(f"openai refused {OFFER.splitlines()[-1]}")
"""


def test_the_guard_fails_the_tests_whose_function_logs_an_sdp(pytester: pytest.Pytester) -> None:
    # Given the project's fixtures and three tests, two of which let the function log an SDP (ICE candidates)
    # When they run, in a pytest of their own
    result = run_in_own_process(pytester, test_sdp=SDP_TESTS)

    # Then the clean one passes and each that logs one errors in the guard's teardown
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*an SDP offer or answer*appeared in the function's logs*"])
