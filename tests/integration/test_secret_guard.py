"""The guard in conftest.py fails a test whose output shows the API key, a minted client secret, a user's
token or an e-mail address."""

import pytest

from tests.conftest import ROOT

LEAKY_TESTS = """
import json

import pytest

from tests.conftest import TEST_API_KEY, load_event
from token_vending.app import lambda_handler
from token_vending.observability import logger


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
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_leaky=LEAKY_TESTS)
    pytester.syspathinsert(ROOT)
    pytester.syspathinsert(ROOT / "functions")

    # When they run
    # (without their captured output in the report: this test's own guard would see the key there)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--show-capture=no")

    # Then the clean one passes and each leaky one errors in the guard's teardown
    result.assert_outcomes(passed=4, errors=3)
    result.stdout.fnmatch_lines(["*a secret appeared in the output*"])
    result.stdout.no_fnmatch_line("*sk-test-4e1f*")


IDENTITY_TESTS = """
import pytest

from token_vending.observability import logger

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
    pytester.makeconftest("from tests.conftest import *  # noqa: F403\n")
    pytester.makepyfile(test_identity=IDENTITY_TESTS)
    pytester.syspathinsert(ROOT)
    pytester.syspathinsert(ROOT / "functions")

    # When they run
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--show-capture=no")

    # Then the clean one passes and each of the others errors in the guard's teardown, saying what it saw
    result.assert_outcomes(passed=5, errors=4)
    result.stdout.fnmatch_lines(["*a user's token (or something shaped like a JWT) appeared in the output*"])
    result.stdout.fnmatch_lines(["*an e-mail address appeared in the output*"])
    # And the report shows neither
    result.stdout.no_fnmatch_line("*eyJ*")
    result.stdout.no_fnmatch_line("*@example.test*")
    result.stdout.no_fnmatch_line("*company.co.uk*")
