"""In a container Lambda starts for a request, the keys are read while the function's code is still loading, from
Secrets Manager's API (moto here), and the first request finds them held; nowhere else are they read before a request.

Each case is a fresh interpreter, as a container is: it imports the handler, waits for any read begun in the
background, says so on stdout, then invokes the handler once. The function's metrics are on the same stdout, in order,
so where the one SecretFetches line falls says when the keys were read.
"""

import json
from http import HTTPStatus

import pytest

from tests.probes import run_probe

PROBE = """
import json, threading
from voice_access.edge.app import lambda_handler
for thread in threading.enumerate():
    if thread.name == "prefetch-keys":
        thread.join()
print("-- imported --", flush=True)
class Context:
    function_name, memory_limit_in_mb, aws_request_id = "TokenVendingFunction", 512, "r"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:TokenVendingFunction"
    def get_remaining_time_in_millis(self):
        return 20_000
event = json.load(open("events/client_secrets.json"))
print(json.dumps({"status": lambda_handler(event, Context())["statusCode"]}))
"""


def secret_fetches(lines: list[str]) -> list[tuple[int, str]]:
    """Where each SecretFetches metric line is among ``lines``, and how the key was read."""
    fetches = []
    for position, line in enumerate(lines):
        if line.startswith("{") and '"SecretFetches"' in line:
            fetches.append((position, json.loads(line)["via"]))
    return fetches


@pytest.mark.parametrize(
    ("initialization", "before_the_request"),
    [
        ("on-demand", True),
        # Initialised ahead of any request: keys read then would wait, or be kept in a snapshot.
        ("provisioned-concurrency", False),
        ("snap-start", False),
    ],
)
def test_the_keys_are_read_during_the_import_only_in_a_container_started_for_a_request(
    function_env: dict[str, str], initialization: str, before_the_request: bool
) -> None:
    # Given the template's default deployment (the key from Secrets Manager's API) and how Lambda started the container
    # When a fresh process imports the handler and invokes it once
    result, lines = run_probe(PROBE, AWS_LAMBDA_INITIALIZATION_TYPE=initialization)

    # Then the request minted, with the keys read once, directly: during the import or during the request
    assert result["status"] == HTTPStatus.OK
    imported = lines.index("-- imported --")
    [(position, via)] = secret_fetches(lines)
    assert via == "direct"
    assert (position < imported) is before_the_request


def test_a_broken_environment_reads_nothing_early_and_the_request_says_what_is_wrong(
    function_env: dict[str, str],
) -> None:
    # Given a container started for a request whose environment the function cannot use
    # When a fresh process imports the handler and invokes it once
    result, lines = run_probe(PROBE, AWS_LAMBDA_INITIALIZATION_TYPE="on-demand", SECRET_CACHE_TTL_SECONDS="forever")

    # Then nothing was read during the import, and the request is refused as misconfigured
    assert result["status"] == HTTPStatus.INTERNAL_SERVER_ERROR
    assert secret_fetches(lines) == []
    assert any('"reason":"settings_invalid"' in line for line in lines)
