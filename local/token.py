"""`make token`: a fresh access token from the user pool of the `make run` on PORT (3000), alone on stdout.

TOKEN_USER (default "developer": developer@example.test; or an e-mail address) chooses the user, created
on first use; TOKEN_GROUPS (comma-separated, default none) its groups, exactly. `make run` leaves where
its user pool is, and the credentials its local AWS takes, in .local-run/<port>.json (readable by this user
only) while it serves, and removes it when it stops.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from local.user_pool import TokenRefused, UserPool

STATE_DIR = Path(__file__).resolve().parent.parent / ".local-run"
DEFAULT_PORT = "3000"
DEFAULT_USER = "developer"


def state_path(port: int | str) -> Path:
    return STATE_DIR / f"{port}.json"


def write_state(port: int, api_url: str, pool: UserPool | None, authenticate: bool) -> Path:
    """What `make token` needs of the `make run` on ``port``; only the one holding the port writes it."""
    STATE_DIR.mkdir(exist_ok=True)
    path = state_path(port)
    state = {"api_url": api_url, "authenticate": authenticate, "user_pool": pool.to_json() if pool else None}
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    # The user pool's entry holds the local AWS's credentials: for this user only.
    with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as file:
        file.write(json.dumps(state, indent=2) + "\n")
    partial.replace(path)  # whole or absent, for a `make token` reading meanwhile
    return path


def _read_state(port: str) -> dict[str, Any] | None:
    try:
        state = json.loads(state_path(port).read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def main(environ: Mapping[str, str] = os.environ) -> int:
    port = environ.get("PORT", DEFAULT_PORT).strip() or DEFAULT_PORT
    on_port = "" if port == DEFAULT_PORT else f"PORT={port} "
    state = _read_state(port)
    if state is None:
        print(
            f"make token: no make run is serving on port {port}. Start it in another terminal "
            f"({on_port}make run), then run {on_port}make token again",
            file=sys.stderr,
        )
        return 1
    if state.get("user_pool") is None:
        print(
            f"make token: the make run on port {port} has no user pool to sign in with: the template takes "
            "no user tokens with these parameters (CallerAuth iam, or a JwtIssuer of your own)",
            file=sys.stderr,
        )
        return 1
    pool = UserPool.from_json(state["user_pool"])
    groups = [group for group in environ.get("TOKEN_GROUPS", "").split(",") if group.strip()]
    try:
        token = pool.token(environ.get("TOKEN_USER", "").strip() or DEFAULT_USER, groups)
    except TokenRefused as refused:
        print(f"make token: {refused}", file=sys.stderr)
        return 2
    except EndpointConnectionError:
        print(
            f"make token: the make run on port {port} is gone (it stopped without tidying up): "
            f"start it again ({on_port}make run)",
            file=sys.stderr,
        )
        return 1
    except (BotoCoreError, ClientError) as error:
        print(f"make token: the local user pool refused: {error}", file=sys.stderr)
        return 1
    if not state.get("authenticate", True):
        print(
            f"make token: the make run on port {port} has authentication off (AUTH=none): it will not check this token",
            file=sys.stderr,
        )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
