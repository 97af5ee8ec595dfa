"""The caller API Gateway's authorizer vouched for (``requestContext.authorizer``), turned into a Caller.

API Gateway hands every JWT claim over as a string: numbers as digits, arrays flattened Go-style to
``"[a b]"`` (joined with an ASCII space, no quotes). Groups and scopes are read from that form or from a plain
single value, and only the first ``MAX_VALUES`` of at most ``MAX_VALUE_CHARS`` each are kept, so a huge
claim costs little and an item cut short is never kept. Items are split on the ASCII space alone, as API
Gateway joins them: a tab or a no-break space is part of a name (which is then not printable, and dropped),
so a group "x<no-break space>premium" is never the group premium. Text that looks like JSON is not parsed
as JSON: API Gateway never sends it, and a group named ``"premium"`` (quotes and all) must not pass for
``premium``.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from voice_access.domain.caller import Caller
from voice_access.domain.errors import CallerUnidentified
from voice_access.observability import count, logger

MAX_VALUES = 100
MAX_VALUE_CHARS = 256


def caller_from_request_context(request_context: Mapping[str, Any] | None, groups_claim: str) -> Caller:
    """The caller named by ``requestContext.authorizer``; CallerUnidentified when there is none."""
    authorizer = (request_context or {}).get("authorizer")
    if not isinstance(authorizer, Mapping) or not authorizer:
        raise _unidentified("no authorizer context: the route has no authorizer")
    jwt = authorizer.get("jwt")
    if isinstance(jwt, Mapping):
        return _jwt_caller(jwt, groups_claim)
    iam = authorizer.get("iam")
    if isinstance(iam, Mapping):
        return _iam_caller(iam)
    raise _unidentified("the authorizer context is neither jwt nor iam")


def _jwt_caller(jwt: Mapping[str, Any], groups_claim: str) -> Caller:
    claims = jwt.get("claims")
    if not isinstance(claims, Mapping):
        raise _unidentified("a jwt authorizer context without claims")
    issuer, subject = claims.get("iss"), claims.get("sub")
    if not (isinstance(issuer, str) and issuer and isinstance(subject, str) and subject):
        raise _unidentified("the token has no iss or no sub claim")
    scopes = jwt.get("scopes")
    if isinstance(scopes, list):  # the route requires scopes: API Gateway lists the token's
        kept_scopes = _bounded(scopes)
    else:
        kept_scopes = claim_values(claims.get("scope", claims.get("scp")), split_plain=True)
    return Caller(
        issuer=issuer,
        subject=subject,
        auth="jwt",
        groups=claim_values(claims.get(groups_claim), split_plain=False),
        scopes=kept_scopes,
    )


def _iam_caller(iam: Mapping[str, Any]) -> Caller:
    account, principal = iam.get("accountId"), iam.get("userArn") or iam.get("userId")
    if not (isinstance(account, str) and account and isinstance(principal, str) and principal):
        raise _unidentified("an iam authorizer context without accountId or userArn")
    return Caller(issuer=f"aws-iam:{account}", subject=principal, auth="iam")


def claim_values(value: object, *, split_plain: bool) -> frozenset[str]:
    """The items of a list-valued claim as API Gateway passes it.

    ``"[a b]"`` (API Gateway's flattening) is a list; any other text is one value, or, with
    ``split_plain``, space-separated values (OAuth's ``scope``).
    """
    if isinstance(value, list):
        return _bounded(value)
    if not isinstance(value, str):
        return frozenset()
    items: Iterable[object]
    if value.startswith("[") and value.endswith("]"):
        # The flattening joins items with spaces and quotes none, so it cannot carry a name that holds a
        # space: ["Not premium"] arrives as "[Not premium]", read as "Not" and "premium". Such names are
        # ambiguous; a policy names groups without spaces (the policy's model refuses others).
        items = _words(value[1:-1])
    elif split_plain:
        items = _words(value)
    else:
        items = [value]
    return _bounded(items)


def _words(text: str) -> list[str]:
    # " " alone, as API Gateway joins (and OAuth's scope separates): str.split() would also split on a tab or a
    # no-break space inside a name. maxsplit stops the scan early: the last item holds the unsplit rest, and is
    # dropped if there is one. Doubled spaces give empty items, which _bounded drops.
    words = text.split(" ", MAX_VALUES)
    return words[:MAX_VALUES]


def _bounded(items: Iterable[object]) -> frozenset[str]:
    """The first MAX_VALUES items; any not a printable string of at most MAX_VALUE_CHARS is dropped."""
    kept: set[str] = set()
    for index, item in enumerate(items):
        if index == MAX_VALUES:
            break
        if isinstance(item, str) and 0 < len(item) <= MAX_VALUE_CHARS and item.isprintable():
            kept.add(item)
    return frozenset(kept)


def _unidentified(problem: str) -> CallerUnidentified:
    logger.error("refusing to mint: no caller identified", reason="caller_unidentified", problem=problem)
    count("ConfigurationErrors", reason="caller_unidentified")
    return CallerUnidentified(
        "This service could not tell who is calling, so it mints nothing. The operator must fix its deployment: "
        "every route needs an authorizer whose callers carry a subject (see the service's logs).",
        code="caller_unidentified",
    )
