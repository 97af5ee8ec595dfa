"""Tracing costs nothing at start-up when it is off: the X-Ray SDK is not even imported."""

from http import HTTPStatus

import pytest

from tests.probes import run_probe

PROBE = """
import json, sys
from voice_access.edge.app import lambda_handler
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "f", 256, "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:f"
event = json.load(open("events/sessions_rejected.json"))
status = lambda_handler(event, Context())["statusCode"]
print(json.dumps({"xray": "aws_xray_sdk" in sys.modules, "status": status}))
"""


def run_handler(trace_disabled: str) -> dict[str, object]:
    """Import the handler in a fresh process and invoke it on a request it refuses (nothing upstream)."""
    result, _ = run_probe(
        PROBE,
        POWERTOOLS_TRACE_DISABLED=trace_disabled,
        POWERTOOLS_SERVICE_NAME="token-vending",
        OPENAI_API_KEY_SECRET_ID="arn:aws:secretsmanager:us-east-1:123456789012:secret:unused-AbCdEf",
    )
    return result


@pytest.mark.parametrize(("trace_disabled", "imported"), [("true", False), ("false", True)])
def test_the_xray_sdk_is_imported_only_when_tracing_is_on(trace_disabled: str, imported: bool) -> None:
    # Given the function's tracing switch (POWERTOOLS_TRACE_DISABLED, set by the template)
    # When a fresh process imports the handler
    result = run_handler(trace_disabled)

    # Then the X-Ray SDK is loaded only if tracing is on, and the handler works either way
    assert result["xray"] is imported
    assert result["status"] == HTTPStatus.BAD_REQUEST
