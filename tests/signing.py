"""Requests signed by botocore's own SigV4 signer, through its public add_auth, as if at a moment the test names:
what the function's hand-made signature is compared with, and what the local AWS must accept."""

from datetime import datetime

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from voice_access.clients.aws_signature import AwsCredentials


def botocore_signed(
    credentials: AwsCredentials,
    *,
    url: str,
    headers: dict[str, str],
    body: bytes,
    region: str,
    service: str,
    now: datetime,
) -> dict[str, str]:
    """``headers`` and what botocore's SigV4Auth adds to them for a POST of ``body`` to ``url``, signing at ``now``."""
    request = AWSRequest(method="POST", url=url, headers=dict(headers), data=body)
    boto_credentials = Credentials(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
    with pytest.MonkeyPatch.context() as clock:
        # SigV4Auth reads the clock through this name only; patched for this signature alone.
        clock.setattr(botocore.auth, "get_current_datetime", lambda *args, **kwargs: now.replace(tzinfo=None))
        SigV4Auth(boto_credentials, service, region).add_auth(request)
    return dict(request.headers.items())
