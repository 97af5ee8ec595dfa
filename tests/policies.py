"""Policy files for tests: the shipped policy, changed."""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parent.parent / "functions" / "voice_access" / "config" / "policy.json"


def unchanged(policy: dict[str, Any]) -> None:
    """No change."""


def shipped_text(change: Callable[[dict[str, Any]], None] = unchanged, indent: int | None = None) -> str:
    """The shipped policy, ``change``d, as JSON (on one line, or indented by ``indent`` spaces as a person edits it)."""
    policy = json.loads(SHIPPED.read_text())
    change(policy)
    return json.dumps(policy, indent=indent)


def shipped_policy(
    directory: Path, change: Callable[[dict[str, Any]], None] = unchanged, indent: int | None = None
) -> Path:
    """The shipped policy, ``change``d, written into ``directory`` (see shipped_text): its path, for POLICY_PATH."""
    path = directory / "policy.json"
    path.write_text(shipped_text(change, indent))
    return path


def without_quotas(policy: dict[str, Any]) -> None:
    """No per-caller limits and no spend brake: the quota store is never asked."""
    policy.pop("spend_brake", None)
    for profile in policy["profiles"].values():
        profile.pop("limits", None)
