"""The supervisor's entry point: an asynchronous invocation (by the function that opened a call, by the supervisor
before it, or by the call's backstop schedule), whose return value Lambda ignores. Wiring only: the event is read
into an order (domain/call_order.py), which the parties made real for this invocation (wiring.py) carry out.

A bad event is logged and counted, never raised: Lambda would only send it to the failure destination again. An
unexpected failure while supervising ends the call and is raised, so that the failure destination (and its alarm)
has it; so are settings or an API key that cannot be read (the call's backstop remains), and a call OpenAI would
not hang up (a fresh backstop tries again).
"""

import os
from typing import TYPE_CHECKING, Any

from voice_access.domain.call_order import OrderRefused, order_of
from voice_access.observability import count, logger
from voice_access.supervision import wiring

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: "LambdaContext") -> None:
    try:
        order = order_of(event)
    except OrderRefused as refused:
        logger.error("supervisor event refused", problem=str(refused))
        count("ConfigurationErrors", reason="supervisor_event_invalid")
        return
    logger.append_keys(user=order.user, profile=order.profile, call_id=order.call_id, action=order.action)
    wiring.run(order, context, os.environ)
