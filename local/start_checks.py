"""What `make run` checks as it starts, so that a developer reads what to fix once, in the terminal, instead of in
every request's 500: the policy file, as the function reads it, and the key in OPENAI_API_KEY, with a call to the
OpenAI it names (OPENAI_BASE_URL's host, or OpenAI) that mints nothing: `GET /v1/models`."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import urllib3

from local.stand_ins import SetupError, chosen_openai
from openai_stub.server import MODELS_PATH

# How the function names the key in a refusal of it (its OPENAI_API_KEY_SOURCE), when make run was given one.
KEY_SOURCE = "the key in OPENAI_API_KEY given to {command}"
_TIMEOUT = urllib3.Timeout(connect=3, read=10)
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_STARTING_ANYWAY = "starting anyway; a mint will say if OpenAI refuses the key"


def key_source(environ: Mapping[str, str], command: str = "make run") -> dict[str, str]:
    """The function's environment that names where its key came from: OPENAI_API_KEY given to ``command``, when
    that is set."""
    if not environ.get("OPENAI_API_KEY", "").strip():
        return {}
    return {"OPENAI_API_KEY_SOURCE": KEY_SOURCE.format(command=command)}


def check_policy(environ: Mapping[str, str]) -> None:
    """The function's policy file read as the function reads it (SetupError saying what is wrong), and kept in its
    cache, so that an edit while make run serves is reported as a change to it. Call it once the gateway has
    loaded the function (in the function's environment)."""
    # Importable once the gateway has put the function's code on sys.path, as Lambda does.
    from voice_access.config.mint_settings import get_settings
    from voice_access.config.policy_file import PolicyError, cached_policy
    from voice_access.config.settings import SettingsError

    try:
        cached_policy(get_settings().service.policy_path)  # the minting function's settings: every one checked
    except (PolicyError, SettingsError) as error:
        instead = ", or unset POLICY for the bundled policy," if environ.get("POLICY", "").strip() else ""
        raise SetupError(f"{error}. Fix it{instead} and start make run again") from None


def check_openai_key(environ: Mapping[str, str]) -> str | None:
    """With OPENAI_API_KEY set, whether the OpenAI it is for takes it: SetupError when it refuses it; a warning to
    print when its answer says nothing about the key (out of reach, another status)."""
    chosen = chosen_openai(environ)
    if chosen is None:
        return None
    upstream, api_key = chosen
    if not (api_key.isascii() and api_key.isprintable() and " " not in api_key):
        raise SetupError("OPENAI_API_KEY holds characters an API key does not (a space, or non-ASCII): paste it again")
    url = upstream + MODELS_PATH
    try:
        response = urllib3.request(
            "GET", url, headers={"Authorization": f"Bearer {api_key}"}, timeout=_TIMEOUT, retries=False, redirect=False
        )
    except urllib3.exceptions.HTTPError as error:
        return f"could not check OPENAI_API_KEY: {url} did not answer ({type(error).__name__}); {_STARTING_ANYWAY}"
    if response.status == 200:
        return None
    code, message = _error(response.data)
    # A restricted key without the Models read permission is refused here alone: it may still mint.
    if response.status == 401 and "missing scopes" not in message.lower():
        raise SetupError(
            f"{url} refused the key in OPENAI_API_KEY (HTTP 401{f', {code}' if code else ''}): set OPENAI_API_KEY "
            "to a valid API key (https://platform.openai.com/api-keys), or unset it for the local OpenAI stub"
        )
    said = f"HTTP {response.status}" + (f", {code}" if code else "")
    return f"could not check OPENAI_API_KEY: {url} answered {said}; {_STARTING_ANYWAY}"


def _error(data: bytes) -> tuple[str, str]:
    """OpenAI's error ``code`` (if it is a plain identifier) and ``message``; never shown: it may echo the key."""
    try:
        error = json.loads(data).get("error")
    except (ValueError, AttributeError):
        return "", ""
    if not isinstance(error, dict):
        return "", ""
    code, message = error.get("code"), error.get("message")
    safe_code = code if isinstance(code, str) and _SAFE_CODE.fullmatch(code) else ""
    return safe_code, message if isinstance(message, str) else ""
