"""The floor the benchmark measures the function against: the least a token vending handler can do.

Parse the body, name the end user (an HMAC of the token's issuer and subject, as OpenAI asks), one
urllib3 POST to OpenAI with the key, hand back the answer. No validation, no policy, no logs, no
metrics, and the keys from the environment rather than Secrets Manager. Not a service anyone should
deploy: a reference for what Python, json, hmac and urllib3 alone cost.

It times its call to OpenAI as the function does (``upstream_ns``, read by the benchmark after each
invocation), so that its own work is measured as the function's: wall time less the waits.
"""

import hmac
import json
import os
import time

import urllib3

_pool = urllib3.PoolManager()
_URL = os.environ["OPENAI_UPSTREAM_URL"].rstrip("/") + "/v1/realtime/client_secrets"
_HEADERS = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}", "Content-Type": "application/json"}
_SAFETY_KEY = os.environ["SAFETY_IDENTIFIER_KEY"].encode()
upstream_ns = 0


def lambda_handler(event: dict, context: object) -> dict:  # type: ignore[type-arg]
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    user = hmac.new(_SAFETY_KEY, f"{claims['iss']} {claims['sub']}".encode(), "sha256").hexdigest()
    body = json.loads(event.get("body") or "{}")
    headers = {**_HEADERS, "OpenAI-Safety-Identifier": user}
    global upstream_ns
    started = time.perf_counter_ns()
    answer = _pool.request("POST", _URL, body=json.dumps(body).encode(), headers=headers)
    upstream_ns = time.perf_counter_ns() - started
    return {"statusCode": answer.status, "headers": {"Content-Type": "application/json"}, "body": answer.data.decode()}
