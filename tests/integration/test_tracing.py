"""With tracing on, what reaches X-Ray holds neither the API key nor a minted client secret."""

from http import HTTPStatus

import pytest

from tests.keys import TEST_API_KEY
from tests.paths import ROOT
from tests.probes import run_probe

# Runs in a fresh process: whether to trace is decided when the handler is imported.
# The X-Ray SDK sends segments over UDP to AWS_XRAY_DAEMON_ADDRESS; this script is that daemon.
TRACED_MINT = """
import json, os, socket

daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
daemon.bind(("127.0.0.1", 0))
os.environ["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:%d" % daemon.getsockname()[1]

from voice_access.edge.app import lambda_handler

class Context:
    function_name, memory_limit_in_mb, aws_request_id = "TokenVendingFunction", 256, "r-1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:TokenVendingFunction"

answer = lambda_handler(json.load(open("events/client_secrets.json")), Context())
daemon.setblocking(False)  # the segments were sent before the handler returned
segments = []
while True:
    try:
        segments.append(daemon.recv(65535).decode(errors="replace"))
    except BlockingIOError:
        break
print(json.dumps({"status": answer["statusCode"], "value": json.loads(answer["body"]).get("value"),
                  "segments": segments}))
"""


@pytest.mark.usefixtures("function_env")
def test_traces_hold_no_secret() -> None:
    # Given the function with tracing on, as in Lambda (a trace header, a task root, no `sam local`)
    # When it mints a client secret (AWS_SAM_LOCAL empty: unset, as in Lambda)
    result, _ = run_probe(
        TRACED_MINT,
        POWERTOOLS_TRACE_DISABLED="false",
        LAMBDA_TASK_ROOT=str(ROOT / "functions"),
        AWS_LAMBDA_FUNCTION_NAME="TokenVendingFunction",
        _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        AWS_SAM_LOCAL="",
    )

    # Then segments were traced, and none of them holds the key or the minted value
    assert result["status"] == HTTPStatus.OK
    traced = "\n".join(result["segments"])
    assert "create_client_secret" in traced
    assert TEST_API_KEY not in traced, "the API key reached X-Ray"
    assert result["value"] not in traced, "a minted client secret reached X-Ray"
