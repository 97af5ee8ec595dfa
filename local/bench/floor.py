"""The floor the benchmark measures the function against: the least a token vending handler can do.

Parse the body, one urllib3 POST to OpenAI with the key, hand back the answer. No validation, no
policy, no logs, no metrics, and the key from the environment rather than Secrets Manager. Not a
service anyone should deploy: a reference for what Python, json and urllib3 alone cost.
"""

import json
import os

import urllib3

_pool = urllib3.PoolManager()
_URL = os.environ["OPENAI_UPSTREAM_URL"].rstrip("/") + "/v1/realtime/client_secrets"
_HEADERS = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}", "Content-Type": "application/json"}


def lambda_handler(event: dict, context: object) -> dict:  # type: ignore[type-arg]
    body = json.loads(event.get("body") or "{}")
    answer = _pool.request("POST", _URL, body=json.dumps(body).encode(), headers=_HEADERS)
    return {"statusCode": answer.status, "headers": {"Content-Type": "application/json"}, "body": answer.data.decode()}
