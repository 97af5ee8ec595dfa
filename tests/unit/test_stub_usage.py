"""The local peer's fixed usage, as its docstring gives it: valid where OpenAI's schemas put it, adding up as OpenAI's
does, and read by the service's pricing as the counts a test computes its cost from."""

from __future__ import annotations

from openai_stub.realtime_peer import RESPONSE_USAGE, TRANSCRIPTION_USAGE
from openai_stub.schema import event_errors
from voice_access.domain.policy.model import Price
from voice_access.domain.pricing import Usage, cost_micro_usd, usage_of_response, usage_of_transcription

# gpt-realtime-2's published prices, USD per 1M tokens (NOTES.md).
GPT_REALTIME_2 = Price(
    text_input=4, text_cached_input=0.4, text_output=24, audio_input=32, audio_cached_input=0.4, audio_output=64
)


def test_a_responses_usage_is_valid_and_adds_up() -> None:
    # Given the usage every response.done carries
    usage = RESPONSE_USAGE
    details, cached = usage["input_token_details"], usage["input_token_details"]["cached_tokens_details"]

    # Then OpenAI's schema takes it, and its parts add up to its totals
    assert event_errors("RealtimeResponse", {"object": "realtime.response", "usage": usage}) == []
    assert usage["input_tokens"] == details["text_tokens"] + details["audio_tokens"] + details["image_tokens"] == 468
    assert details["cached_tokens"] == sum(cached.values()) == 192
    assert usage["output_tokens"] == sum(usage["output_token_details"].values()) == 243
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]


def test_a_responses_usage_is_read_and_priced_as_the_docstring_says() -> None:
    # When the service reads a response's usage
    read = usage_of_response(RESPONSE_USAGE)

    # Then it has the counts the docstring gives (cached tokens apart from the rest of their kind)
    assert read == Usage(
        text_input=123 - 64,
        text_cached_input=64,
        text_output=27,
        audio_input=345 - 128,
        audio_cached_input=128,
        audio_output=216,
    )
    # And at gpt-realtime-2's prices it costs 21,728.8 micro-dollars, rounded up once
    assert cost_micro_usd(read, GPT_REALTIME_2) == 21_729


def test_an_input_transcriptions_usage_is_valid_and_read() -> None:
    # Given the usage every input transcription carries
    usage = TRANSCRIPTION_USAGE

    # Then OpenAI's schema takes it, and the service reads its counts
    assert event_errors("TranscriptTextUsageTokens", usage) == []
    assert usage_of_transcription(usage) == Usage(text_input=2, audio_input=10, text_output=8)
