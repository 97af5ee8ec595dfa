"""The guard in conftest.py fails a test whose output shows the API key or a minted client secret."""

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
