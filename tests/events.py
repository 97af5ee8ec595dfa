"""The API Gateway events of events/."""

import json
from typing import Any

from tests.paths import EVENTS


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    """An API Gateway event from events/, with top-level fields replaced (``body`` may be a dict)."""
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    for key, value in changes.items():
        event[key] = json.dumps(value) if key == "body" and not isinstance(value, str) else value
    return event
