"""A mint's cold start loads only what a mint needs: the other routes' use cases load when their route is first
asked for (edge/routes.py imports them there)."""

from tests.probes import run_probe

PROBE = """
import json, sys
import voice_access.edge.app
print(json.dumps({"loaded": sorted(name for name in sys.modules if name.startswith("voice_access."))}))
"""

LOADED_ON_FIRST_USE = {
    "voice_access.domain.live",
    "voice_access.domain.calls",
    "voice_access.domain.opening",
    "voice_access.domain.sdp",
    "voice_access.domain.profiles",
    "voice_access.domain.usage",
    "voice_access.domain.ledger",
    "voice_access.clients.aws_lambda",
    "voice_access.clients.scheduler",
}


def test_importing_the_handler_loads_no_other_routes_use_case() -> None:
    # Given / When a fresh process imports the handler, as a cold start does
    loaded, _ = run_probe(
        PROBE, OPENAI_API_KEY_SECRET_ID="arn:aws:secretsmanager:us-east-1:123456789012:secret:unused-AbCdEf"
    )

    # Then the Live sessions', the calls' and the profiles' use cases are not among its modules
    assert LOADED_ON_FIRST_USE.isdisjoint(loaded["loaded"])
    assert "voice_access.domain.minting" in loaded["loaded"]
