"""What a call's usage costs: OpenAI's usage read strictly, and known counts priced to the exact micro-dollar,
rounded up once per event; usage that cannot be metered is refused, naming the field and never its values."""

import copy
import json
from typing import Any

import pytest

from openai_stub.schema import event_errors
from tests.policies import bundled_policy
from voice_access.domain.policy.model import Price
from voice_access.domain.pricing import (
    Unpriced,
    Usage,
    UsageRefused,
    cost_micro_usd,
    cost_of_seconds,
    usage_of_response,
    usage_of_transcription,
)

# gpt-realtime-2's published prices, USD per 1M tokens (its model page).
GPT_REALTIME_2 = Price(
    text_input=4,
    text_cached_input=0.4,
    text_output=24,
    audio_input=32,
    audio_cached_input=0.4,
    audio_output=64,
    image_input=5,
    image_cached_input=0.5,
)

# A response that read 1000 text tokens (200 of them from the cache) and 500 audio tokens, and wrote 100 text tokens
# and 300 audio tokens: response.done's response.usage as OpenAI sends it.
RESPONSE_USAGE: dict[str, Any] = {
    "total_tokens": 1900,
    "input_tokens": 1500,
    "output_tokens": 400,
    "input_token_details": {
        "text_tokens": 1000,
        "audio_tokens": 500,
        "image_tokens": 0,
        "cached_tokens": 200,
        "cached_tokens_details": {"text_tokens": 200, "audio_tokens": 0, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 100, "audio_tokens": 300},
}


def _response_done(usage: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "response.done",
        "event_id": "event_1",
        "response": {
            "object": "realtime.response",
            "id": "resp_1",
            "status": "completed",
            "output": [],
            "usage": usage,
        },
    }


def test_known_counts_of_a_response_cost_exactly_what_the_published_prices_say() -> None:
    # Given OpenAI's usage of one response, in the shape its events schema gives
    assert event_errors("RealtimeServerEventResponseDone", _response_done(RESPONSE_USAGE)) == []

    # When it is read and priced at gpt-realtime-2's prices
    usage = usage_of_response(RESPONSE_USAGE)
    cost = cost_micro_usd(usage, GPT_REALTIME_2)

    # Then each kind is counted once, cached tokens apart from the rest of their kind
    assert usage == Usage(text_input=800, text_cached_input=200, text_output=100, audio_input=500, audio_output=300)
    assert (usage.input_tokens, usage.output_tokens) == (1500, 400)
    # and the cost is, by hand ($X per 1M tokens is X micro-dollars a token):
    #   800 * 4 + 200 * 0.4 + 500 * 32 + 100 * 24 + 300 * 64 = 3200 + 80 + 16000 + 2400 + 19200 = 40880 ($0.04088)
    assert cost == 40880


def test_the_shipped_price_of_the_default_model_gives_the_same_cost() -> None:
    # Given the shipped policy's price of gpt-realtime-2.1 (published as gpt-realtime-2's)
    price = bundled_policy().prices["gpt-realtime-2.1"]

    # When / Then
    assert cost_micro_usd(usage_of_response(RESPONSE_USAGE), price) == 40880


def test_images_are_priced_as_images_and_their_cached_part_apart() -> None:
    # Given a response that read 300 image tokens, 100 of them cached
    usage = copy.deepcopy(RESPONSE_USAGE)
    usage["input_tokens"] += 300
    usage["total_tokens"] += 300
    usage["input_token_details"] |= {"image_tokens": 300, "cached_tokens": 300}
    usage["input_token_details"]["cached_tokens_details"]["image_tokens"] = 100

    # When
    cost = cost_micro_usd(usage_of_response(usage), GPT_REALTIME_2)

    # Then 200 * 5 + 100 * 0.5 = 1050 more than without them
    assert cost == 40880 + 1050


def test_a_cost_is_rounded_up_once_per_event_not_once_per_kind() -> None:
    # Given an event of one token of each of three kinds, at gpt-realtime-2.1-mini's prices (0.6, 0.06 and 0.3
    # micro-dollars a token)
    price = Price(text_input=0.6, text_cached_input=0.06, audio_cached_input=0.3)
    usage = Usage(text_input=1, text_cached_input=1, audio_cached_input=1)

    # When / Then 0.96 micro-dollars rounds up to 1 (rounding each kind up would make it 3)
    assert cost_micro_usd(usage, price) == 1


def test_a_cost_is_exact_where_binary_floats_are_not() -> None:
    # Given a price whose product with a count is not exact in binary floating point (0.07 * 100 is
    # 7.000000000000001 as floats, which would round up to 8)
    assert 0.07 * 100 > 7

    # When / Then the cost is the exact 7 micro-dollars
    assert cost_micro_usd(Usage(text_input=100), Price(text_input=0.07)) == 7


def test_nothing_used_costs_nothing() -> None:
    # Given / When / Then
    assert usage_of_response({"input_tokens": 0, "output_tokens": 0}) == Usage()
    assert cost_micro_usd(Usage(), Price(per_minute=0.05)) == 0


def test_counts_openai_leaves_null_are_none_of_that_kind() -> None:
    # Given a usage whose image and cached counts are null, as OpenAI's types allow
    usage = copy.deepcopy(RESPONSE_USAGE)
    usage["input_token_details"] = {
        "text_tokens": 1000,
        "audio_tokens": 500,
        "image_tokens": None,
        "cached_tokens": None,
        "cached_tokens_details": None,
    }

    # When / Then nothing is cached and there are no image tokens
    assert usage_of_response(usage) == Usage(text_input=1000, text_output=100, audio_input=500, audio_output=300)


def test_a_transcription_billed_by_tokens_costs_its_audio_prompt_and_transcript() -> None:
    # Given gpt-4o-transcribe's usage of one transcribed item (100 audio tokens, a prompt of 20 text tokens, a
    # transcript of 30) and its prices
    usage = {
        "type": "tokens",
        "input_tokens": 120,
        "output_tokens": 30,
        "total_tokens": 150,
        "input_token_details": {"text_tokens": 20, "audio_tokens": 100},
    }
    price = Price(text_input=2.5, audio_input=6, text_output=10)

    # When
    read = usage_of_transcription(usage)

    # Then 20 * 2.5 + 100 * 6 + 30 * 10 = 50 + 600 + 300
    assert read == Usage(text_input=20, audio_input=100, text_output=30)
    assert cost_micro_usd(read, price) == 950


def test_a_transcription_billed_by_duration_costs_its_seconds_rounded_up() -> None:
    # Given gpt-realtime-whisper's usage of 7.2 seconds of audio, at $0.017 a minute
    read = usage_of_transcription({"type": "duration", "seconds": 7.2})

    # When / Then 8 seconds are billed: 8 * 17000 / 60 = 2266.67, rounded up
    assert read == Usage(seconds=8)
    assert cost_micro_usd(read, Price(per_minute=0.017)) == 2267


@pytest.mark.parametrize(
    ("seconds", "micro_usd"),
    [(60, 50_000), (90, 75_000), (1, 834), (600, 500_000), (0, 0)],
)
def test_live_seconds_cost_their_share_of_the_price_per_minute(seconds: int, micro_usd: int) -> None:
    # Given GPT-Live's $0.05 a minute, billed by the second
    price = bundled_policy().prices["gpt-live-1"]

    # When / Then a minute is 50000 micro-dollars, a second 833.33 rounded up
    assert cost_of_seconds(seconds, price) == micro_usd


@pytest.mark.parametrize(
    ("usage", "price", "lacking"),
    [
        (Usage(audio_input=10), Price(text_input=4, text_output=16), "audio_input"),
        (Usage(image_cached_input=1), Price(image_input=5), "image_cached_input"),
        (Usage(seconds=3), Price(text_input=2.5), "per_minute"),
    ],
)
def test_a_usage_the_price_does_not_price_is_unpriced(usage: Usage, price: Price, lacking: str) -> None:
    # Given counts of a kind the model's price leaves out
    # When / Then it is refused, naming the missing price, rather than counted as free
    with pytest.raises(Unpriced, match=lacking):
        cost_micro_usd(usage, price)


def test_seconds_without_a_price_per_minute_are_unpriced() -> None:
    # Given / When / Then
    with pytest.raises(Unpriced, match="per_minute"):
        cost_of_seconds(30, Price(text_input=4))


def _with(change: dict[str, Any]) -> dict[str, Any]:
    usage = copy.deepcopy(RESPONSE_USAGE)
    for path, value in change.items():
        *parents, key = path.split(".")
        node = usage
        for part in parents:
            node = node[part]
        if value is _GONE:
            del node[key]
        else:
            node[key] = value
    return usage


_GONE = object()
ABSURD = 12_345_678  # more tokens than one event holds; never repeated in a refusal


@pytest.mark.parametrize(
    ("usage", "reason"),
    [
        pytest.param(None, "usage is not an object", id="null"),
        pytest.param([1, 2], "usage is not an object", id="array"),
        pytest.param("1900", "usage is not an object", id="string"),
        pytest.param(_with({"input_tokens": _GONE}), "input_tokens is missing", id="missing-input"),
        pytest.param(_with({"output_tokens": None}), "output_tokens is missing", id="null-output"),
        pytest.param(_with({"input_tokens": 1500.0}), "input_tokens is missing or not a whole", id="float"),
        pytest.param(_with({"input_tokens": "1500"}), "input_tokens is missing or not a whole", id="text"),
        pytest.param(_with({"output_tokens": True}), "output_tokens is missing or not a whole", id="boolean"),
        pytest.param(_with({"output_token_details.audio_tokens": -300}), "audio_tokens is negative", id="negative"),
        pytest.param(_with({"input_tokens": ABSURD, "total_tokens": ABSURD + 400}), "more than 10000000", id="absurd"),
        pytest.param(_with({"total_tokens": 1901}), "total_tokens is not", id="total"),
        pytest.param(_with({"input_token_details.text_tokens": 999}), "do not add up", id="input-kinds"),
        pytest.param(_with({"output_token_details.text_tokens": 99}), "do not add up", id="output-kinds"),
        pytest.param(_with({"input_token_details": _GONE}), "input_token_details is not an object", id="no-details"),
        pytest.param(
            _with({"input_token_details.cached_tokens_details.text_tokens": 199}), "do not add up", id="cached-kinds"
        ),
        pytest.param(
            _with(
                {
                    "input_token_details.cached_tokens": 600,
                    "input_token_details.cached_tokens_details.audio_tokens": 400,
                    "input_token_details.cached_tokens_details.text_tokens": 200,
                    "input_token_details.audio_tokens": 300,
                    "input_token_details.text_tokens": 1200,
                }
            ),
            "more cached audio tokens than audio tokens",
            id="cached-beyond-kind",
        ),
        pytest.param(
            _with({"input_token_details.cached_tokens_details": _GONE}),
            "cached_tokens_details is not an object",
            id="no-cached-details",
        ),
    ],
)
def test_a_response_usage_that_cannot_be_metered_is_refused_naming_the_field(usage: Any, reason: str) -> None:
    # Given a usage that is not an object, lacks a count, or has one that is not whole, is negative, absurd, or
    # does not add up
    # When / Then it is refused, saying which, without the payload's values
    with pytest.raises(UsageRefused, match=reason) as caught:
        usage_of_response(usage)
    assert str(ABSURD) not in str(caught.value)
    assert json.dumps(usage) not in str(caught.value)


@pytest.mark.parametrize(
    ("usage", "reason"),
    [
        pytest.param({"type": "duration", "seconds": -1}, "seconds is negative", id="negative-seconds"),
        pytest.param({"type": "duration", "seconds": -0.5}, "seconds is", id="negative-fraction"),
        pytest.param({"type": "duration", "seconds": float("nan")}, "not a whole number", id="nan"),
        pytest.param({"type": "duration", "seconds": True}, "not a whole number", id="boolean"),
        pytest.param({"type": "duration"}, "seconds is missing", id="no-seconds"),
        pytest.param({"type": "duration", "seconds": 86_401}, "more than 86400", id="more-than-a-day"),
        pytest.param({"type": "minutes", "seconds": 3}, "neither 'tokens' nor 'duration'", id="unknown-type"),
        pytest.param({"seconds": 3}, "neither 'tokens' nor 'duration'", id="no-type"),
        pytest.param(
            {"type": "tokens", "input_tokens": 10, "output_tokens": 2, "total_tokens": 12},
            "input_token_details is not an object",
            id="tokens-without-details",
        ),
        pytest.param(
            {
                "type": "tokens",
                "input_tokens": 10,
                "output_tokens": -2,
                "input_token_details": {"text_tokens": 0, "audio_tokens": 10},
            },
            "output_tokens is negative",
            id="negative-tokens",
        ),
        pytest.param(
            {
                "type": "tokens",
                "input_tokens": 10,
                "output_tokens": 2,
                "input_token_details": {"text_tokens": 1, "audio_tokens": 10},
            },
            "do not add up",
            id="kinds",
        ),
        pytest.param("duration", "usage is not an object", id="string"),
    ],
)
def test_a_transcription_usage_that_cannot_be_metered_is_refused(usage: Any, reason: str) -> None:
    # Given / When / Then
    with pytest.raises(UsageRefused, match=reason):
        usage_of_transcription(usage)


@pytest.mark.parametrize("field", ["text_input", "audio_output", "seconds"])
def test_a_usage_built_with_a_negative_count_is_refused(field: str) -> None:
    # Given / When / Then
    with pytest.raises(UsageRefused, match=f"{field} is negative"):
        Usage(**{field: -1})
