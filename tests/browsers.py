"""What the headless Chromium tests share: the pinned npm packages, and whether a missing Chromium may skip them."""

import json
import os

from tests.conftest import ROOT

PINNED = json.loads((ROOT / "package.json").read_text())["dependencies"]
INSTALL_CHROMIUM = (
    "headless Chromium is not installed: `make test` installs Debian's package where it runs as root with "
    "apt-get; elsewhere run `sudo apt-get install chromium` (Debian, Ubuntu), then run the tests again"
)


def in_ci() -> bool:
    """CI sets CI: there the browser tests never skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
