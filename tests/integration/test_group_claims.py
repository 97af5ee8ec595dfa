"""A group name holding whitespace other than the ASCII space, in a real token through the local gateway: API
Gateway flattens the groups claim joining with " " alone, so such a name is one group, and never opens a profile
gated on the word after the whitespace."""

import json
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from local.gateway import LocalApi
from openai_stub.server import OpenAIStub
from tests.issuers import LoopbackIssuer
from tests.local_api import post, serving_issuer
from voice_access.domain.policy.model import PROFILE_HEADER

MINT_PATH = "/v1/realtime/client_secrets"
MINT_BODY = json.dumps({"session": {"type": "realtime"}}).encode()


@pytest.fixture(scope="module")
def issuer() -> Iterator[LoopbackIssuer]:
    with LoopbackIssuer(audience="token-vending-test") as started:
        yield started


@pytest.fixture
def api(
    issuer: LoopbackIssuer, api_key_secret_arn: str, secrets_manager_url: str, openai_stub: OpenAIStub
) -> Iterator[LocalApi]:
    with serving_issuer(issuer, api_key_secret_arn, openai_stub.base_url, secrets_manager_url) as started:
        yield started


@pytest.mark.parametrize(
    ("groups", "status"),
    [
        pytest.param(["x\u00a0premium"], HTTPStatus.FORBIDDEN, id="no-break-space"),
        pytest.param(["a\tpremium"], HTTPStatus.FORBIDDEN, id="tab"),
        pytest.param(["beta", "premium"], HTTPStatus.OK, id="a-member"),
    ],
)
def test_a_group_name_with_a_non_space_whitespace_does_not_open_a_gated_profile(
    api: LocalApi, issuer: LoopbackIssuer, openai_stub: OpenAIStub, groups: list[str], status: HTTPStatus
) -> None:
    # Given a token the issuer signed, whose groups claim is this list
    claims: dict[str, Any] = {"cognito:groups": groups}
    token = issuer.token(**claims)

    # When it asks for the premium profile (open to the premium group only)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", PROFILE_HEADER: "premium"}
    answer = post(api, MINT_PATH, MINT_BODY, headers)

    # Then only a member of premium gets a client secret; the others are refused, and nothing reaches OpenAI
    assert answer.status == status, answer.data
    if status == HTTPStatus.OK:
        assert len(openai_stub.requests) == 1
    else:
        assert answer.error["code"] == "permission_denied"
        assert openai_stub.requests == []
