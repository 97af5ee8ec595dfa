"""A fresh interpreter for what only a new process shows (what a cold start imports, a switch read at import)."""

import json
import os
import subprocess
import sys
from typing import Any

from tests.paths import ROOT


def run_probe(script: str, *args: str, **environment: str) -> tuple[dict[str, Any], list[str]]:
    """Run ``script`` in a new Python with the function's code importable, this process's environment and
    ``environment`` over it; its last line of output is a JSON object. Returns it and the lines before it."""
    ran = subprocess.run(
        [sys.executable, "-c", script, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT / "functions"), **environment},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    *before, last = ran.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(last)
    return result, before
