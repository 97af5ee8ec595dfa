"""What a call's usage costs: the counts OpenAI reports (a response's tokens, an input transcription's tokens or
seconds) read strictly into a `Usage`, and priced by the policy's `Price` of the model, exactly, in whole
micro-dollars rounded up once per event.

$X per 1M tokens is X micro-dollars per token, so a cost is a sum of counts times the prices as the policy file
writes them, in decimal arithmetic (never binary floats), rounded up to a whole micro-dollar at the end.
"""

import math
from collections.abc import Mapping
from decimal import ROUND_CEILING, Context, Decimal, Inexact
from typing import Any

from voice_access.domain.limits import MICRO
from voice_access.domain.policy.model import TOKEN_PRICES, Price
from voice_access.domain.policy.records import Record

# More tokens than this in one event is not a usage OpenAI reports: a fault, or a forgery.
MAX_EVENT_TOKENS = 10_000_000
# Nor is more than a day of audio transcribed in one event.
MAX_EVENT_SECONDS = 86_400

# Exact or an error: every product and sum of a cost is far inside 60 digits, and Inexact is trapped.
_EXACT = Context(prec=60, traps=[Inexact])
_UP = Context(prec=60, rounding=ROUND_CEILING)


class UsageRefused(ValueError):
    """A usage that cannot be metered as it is: its reason names the field, never the payload's values."""


class Unpriced(ValueError):
    """A usage with counts of a kind the model's price does not give."""


class Usage(Record):
    """What one event used, each count priced at the `Price` field of the same name: ``text_input`` is the text
    tokens in that were not cached, ``text_cached_input`` those read from OpenAI's cache, and so on; ``seconds``
    of audio a transcription model bills by duration (whole seconds, rounded up)."""

    text_input: int = 0
    text_cached_input: int = 0
    text_output: int = 0
    audio_input: int = 0
    audio_cached_input: int = 0
    audio_output: int = 0
    image_input: int = 0
    image_cached_input: int = 0
    seconds: int = 0

    def __post_init__(self) -> None:
        for name in (*TOKEN_PRICES, "seconds"):
            _count(getattr(self, name), name, MAX_EVENT_SECONDS if name == "seconds" else MAX_EVENT_TOKENS)

    @property
    def input_tokens(self) -> int:
        return sum(getattr(self, name) for name in TOKEN_PRICES if "input" in name)

    @property
    def output_tokens(self) -> int:
        return self.text_output + self.audio_output


def usage_of_response(usage: object) -> Usage:
    """The usage of ``response.done``'s ``response.usage``: ``input_tokens`` and ``output_tokens``, split by kind in
    ``input_token_details`` (``text_tokens``, ``audio_tokens``, ``image_tokens``, and ``cached_tokens`` of them,
    split in ``cached_tokens_details``) and ``output_token_details``. Cached tokens are part of each kind's count.
    UsageRefused when it is not such an object, or its counts are missing, not whole, negative, absurd, or do not
    add up."""
    body = _object(usage, "usage")
    input_tokens = _count(body.get("input_tokens"), "input_tokens")
    output_tokens = _count(body.get("output_tokens"), "output_tokens")
    if (total := body.get("total_tokens")) is not None and _count(
        total, "total_tokens"
    ) != input_tokens + output_tokens:
        raise UsageRefused("total_tokens is not input_tokens plus output_tokens")
    inputs = _details(body, "input_token_details", ("text_tokens", "audio_tokens", "image_tokens"), input_tokens)
    text, audio, image = inputs
    details = _object(body.get("input_token_details") or {}, "input_token_details")
    cached_tokens = _count(_or_zero(details.get("cached_tokens")), "input_token_details.cached_tokens")
    cached = _details(
        details,
        "cached_tokens_details",
        ("text_tokens", "audio_tokens", "image_tokens"),
        cached_tokens,
        where="input_token_details.",
    )
    for kind, whole, part in zip(("text", "audio", "image"), inputs, cached, strict=True):
        if part > whole:
            raise UsageRefused(f"more cached {kind} tokens than {kind} tokens in input_token_details")
    text_output, audio_output = _details(body, "output_token_details", ("text_tokens", "audio_tokens"), output_tokens)
    return Usage(
        text_input=text - cached[0],
        text_cached_input=cached[0],
        text_output=text_output,
        audio_input=audio - cached[1],
        audio_cached_input=cached[1],
        audio_output=audio_output,
        image_input=image - cached[2],
        image_cached_input=cached[2],
    )


def usage_of_transcription(usage: object) -> Usage:
    """The usage of ``conversation.item.input_audio_transcription.completed``'s ``usage``: ``{"type": "tokens",
    "input_tokens", "output_tokens", "input_token_details": {"text_tokens", "audio_tokens"}}`` for a model billed
    by tokens, or ``{"type": "duration", "seconds"}`` for one billed by the audio's length (rounded up to a whole
    second). UsageRefused as `usage_of_response`."""
    body = _object(usage, "usage")
    kind = body.get("type")
    if kind == "duration":
        seconds = body.get("seconds")
        if type(seconds) is float and math.isfinite(seconds) and seconds >= 0:
            seconds = math.ceil(seconds)
        elif type(seconds) is float and seconds < 0:
            raise UsageRefused("seconds is negative")
        return Usage(seconds=_count(seconds, "seconds", MAX_EVENT_SECONDS))
    if kind != "tokens":
        raise UsageRefused("type is neither 'tokens' nor 'duration'")
    input_tokens = _count(body.get("input_tokens"), "input_tokens")
    output_tokens = _count(body.get("output_tokens"), "output_tokens")
    if (total := body.get("total_tokens")) is not None and _count(
        total, "total_tokens"
    ) != input_tokens + output_tokens:
        raise UsageRefused("total_tokens is not input_tokens plus output_tokens")
    text, audio = _details(body, "input_token_details", ("text_tokens", "audio_tokens"), input_tokens)
    return Usage(text_input=text, audio_input=audio, text_output=output_tokens)


def cost_micro_usd(usage: Usage, price: Price) -> int:
    """What ``usage`` costs at ``price``, in micro-dollars, rounded up to a whole one. Unpriced when the usage has
    counts of a kind the price leaves out."""
    total = Decimal(0)
    for name in TOKEN_PRICES:
        if count := getattr(usage, name):
            total = _EXACT.add(total, _EXACT.multiply(Decimal(count), _rate(price, name)))
    if usage.seconds:
        total = _EXACT.add(total, _per_second(usage.seconds, price))
    return int(total.to_integral_value(rounding=ROUND_CEILING))


def cost_of_seconds(seconds: int, price: Price) -> int:
    """What ``seconds`` of billed session time cost at ``price``'s ``per_minute``, in micro-dollars, rounded up to a
    whole one. Unpriced without a per_minute."""
    _count(seconds, "seconds", MAX_EVENT_SECONDS)
    return int(_per_second(seconds, price).to_integral_value(rounding=ROUND_CEILING))


def _per_second(seconds: int, price: Price) -> Decimal:
    # per_minute dollars is per_minute * MICRO micro-dollars a minute, divided by 60 once, after the product: a whole
    # minute's cost stays exact, and a division that does not end rounds up, never down
    minute = _EXACT.multiply(_rate(price, "per_minute", "seconds"), Decimal(MICRO))
    return _UP.divide(_EXACT.multiply(Decimal(seconds), minute), Decimal(60))


def _rate(price: Price, name: str, counted: str | None = None) -> Decimal:
    value = getattr(price, name)
    if value is None:
        raise Unpriced(f"the usage has {counted or name.replace('_', ' ') + ' tokens'}, and the price gives no {name}")
    return Decimal(str(value))  # the number the policy file wrote: 0.4 is 0.4, not the binary float nearest it


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UsageRefused(f"{where} is not an object")
    return value


def _count(value: object, where: str, most: int = MAX_EVENT_TOKENS) -> int:
    if type(value) is not int:
        raise UsageRefused(f"{where} is missing or not a whole number")
    if value < 0:
        raise UsageRefused(f"{where} is negative")
    if value > most:
        raise UsageRefused(f"{where} is more than {most} in one event")
    return value


def _or_zero(value: object) -> object:
    """A count OpenAI's types allow to be left out or null: none of that kind."""
    return 0 if value is None else value


def _details(
    body: Mapping[str, Any], key: str, kinds: tuple[str, ...], total: int, *, where: str = ""
) -> tuple[int, ...]:
    """Each kind's count in ``body[key]``, adding up to ``total``; none of them for a total of 0."""
    details = body.get(key)
    if details is None and total == 0:
        return (0,) * len(kinds)
    found = _object(details, where + key)
    counts = tuple(_count(_or_zero(found.get(kind)), f"{where}{key}.{kind}") for kind in kinds)
    if sum(counts) != total:
        raise UsageRefused(f"the counts in {where}{key} do not add up to its total")
    return counts
