"""The routes: what answers each of them, given the event, the caller and the invocation's context.

Each route is declared in template.yaml, so API Gateway has already matched the request to one of them and says
which in ``routeKey``: a dictionary look-up finds what answers it. Each minting route is the endpoint that knows
its shape (domain/endpoints.py: GA, or beta translated onto GA). The function's settings and policy are read here,
after the request's own body, and handed to the use case.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from voice_access.clients.deadline import Deadline
from voice_access.config.mint_settings import checked_settings
from voice_access.config.policy_file import checked_policy
from voice_access.domain import endpoints, minting
from voice_access.domain.caller import Caller
from voice_access.domain.policy.model import PROFILE_HEADER
from voice_access.edge import answers
from voice_access.edge.request_body import call_offer, json_object

if TYPE_CHECKING:  # 15 ms of import for a type hint
    from aws_lambda_powertools.utilities.typing import LambdaContext


# Not a NamedTuple: defining one costs about 60 us of every cold start, and nothing here needs a tuple.
class Route:
    """What answers one route, given the event, the caller and the invocation's context."""

    __slots__ = ("answer", "name")

    def __init__(self, name: str, answer: Callable[[dict[str, Any], Caller, "LambdaContext"], answers.Answer]) -> None:
        self.name = name  # in logs and metrics
        self.answer = answer


class _Asked:
    """What a route hands its use case besides the body, read after it: the function's settings and policy, the
    request's deadline, and the profile it names."""

    __slots__ = ("deadline", "policy", "profile", "settings")

    def __init__(self, headers: dict[str, str], context: "LambdaContext") -> None:
        self.settings = checked_settings()
        self.policy = checked_policy(self.settings.service.policy_path)
        # One deadline for the whole request, ending before Lambda's timeout, so a slow OpenAI or Secrets
        # Manager still gets our envelope rather than API Gateway's bare 5xx.
        self.deadline = Deadline.of_invocation(context)
        self.profile = headers.get(PROFILE_HEADER.lower())


def _headers(event: dict[str, Any]) -> dict[str, str]:
    # API Gateway sends header names in lower case; a local or hand-made event may not.
    return {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}


def _minting(endpoint: endpoints.Endpoint) -> Route:
    def answer(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> answers.Answer:
        headers = _headers(event)
        body = json_object(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-type"))
        asked = _Asked(headers, context)
        minted = minting.mint(
            endpoint, body, asked.profile, caller, settings=asked.settings, policy=asked.policy, deadline=asked.deadline
        )
        return answers.minted(minted)

    return Route(endpoint.name, answer)


def _live_sessions(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> answers.Answer:
    from voice_access.domain import live  # here: a mint's cold start does not load it

    headers = _headers(event)
    body = json_object(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-type"))
    asked = _Asked(headers, context)
    opened = live.open_session(
        body, asked.profile, caller, settings=asked.settings, policy=asked.policy, deadline=asked.deadline
    )
    return answers.minted(opened)


def _calls(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> answers.Answer:
    from voice_access.domain import calls  # here: a mint's cold start does not load it

    headers = _headers(event)
    offer, session = call_offer(event.get("body"), bool(event.get("isBase64Encoded")), headers.get("content-type"))
    asked = _Asked(headers, context)
    called = calls.open_session(
        offer, session, asked.profile, caller, settings=asked.settings, policy=asked.policy, deadline=asked.deadline
    )
    return answers.called(called, called.location)


def _profiles(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> answers.Answer:
    from voice_access.domain import profiles  # here: a mint's cold start does not load the listing

    settings = checked_settings()
    policy = checked_policy(settings.service.policy_path)
    # Its quota read ends within the invocation's own deadline, as a mint's calls do.
    deadline = Deadline.of_invocation(context)
    return answers.listed(profiles.list_profiles(caller, settings=settings, policy=policy, deadline=deadline))


def _usage(event: dict[str, Any], caller: Caller, context: "LambdaContext") -> answers.Answer:
    from voice_access.domain import usage  # here: a mint's cold start does not load it

    settings = checked_settings()
    policy = checked_policy(settings.service.policy_path)
    return answers.listed(
        usage.read_usage(caller, service=settings.service, policy=policy, deadline=Deadline.of_invocation(context))
    )


ROUTES: dict[str, Route] = {
    "POST /v1/realtime/client_secrets": _minting(endpoints.CLIENT_SECRETS),
    "POST /v1/realtime/sessions": _minting(endpoints.SESSIONS),
    "POST /v1/realtime/transcription_sessions": _minting(endpoints.TRANSCRIPTION_SESSIONS),
    "POST /v1/realtime/translations/client_secrets": _minting(endpoints.TRANSLATION_CLIENT_SECRETS),
    "GET /v1/realtime/profiles": Route("profiles", _profiles),
    "GET /v1/realtime/usage": Route("usage", _usage),
    "POST /v1/live/sessions": Route("live_sessions", _live_sessions),
    "POST /v1/realtime/calls": Route("calls", _calls),
}
