"""Policy files for tests: the shipped policy, changed."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parent.parent / "functions" / "token_vending" / "policy.json"


def shipped_policy(directory: Path, change: Callable[[dict[str, Any]], None] = lambda policy: None) -> Path:
    """The shipped policy, ``change``d, written into ``directory``: its path, for POLICY_PATH."""
    policy = json.loads(SHIPPED.read_text())
    change(policy)
    path = directory / "policy.json"
    path.write_text(json.dumps(policy))
    return path


def without_quotas(policy: dict[str, Any]) -> None:
    """No per-caller limits and no spend brake: the quota store is never asked."""
    policy.pop("spend_brake", None)
    for profile in policy["profiles"].values():
        profile.pop("limits", None)
