"""What a test printed and logged, as the `output` fixture captures it: Powertools log lines and EMF metrics."""

import io
import json
from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass
class Output:
    """What the test printed: Powertools log lines and EMF metrics."""

    _capsys: pytest.CaptureFixture[str]
    _log_stream: io.StringIO
    _printed: list[str] = field(default_factory=list)

    def _drain(self) -> str:
        out, err = self._capsys.readouterr()
        self._printed.append(out + err)
        return "".join(self._printed)

    def text(self) -> str:
        return self._log_stream.getvalue() + self._drain()

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self._log_stream.getvalue().splitlines() if line.startswith("{")]

    def metrics(self) -> list[dict[str, Any]]:
        """EMF documents: JSON lines with an ``_aws`` key, printed by Metrics or logged (a mint's log line)."""
        lines = self._log_stream.getvalue().splitlines() + self._drain().splitlines()
        documents = [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]
        return [document for document in documents if "_aws" in document]

    def metric_count(self, name: str, **dimensions: str) -> int:
        return sum(
            int(sum(m[name]))
            for m in self.metrics()
            if name in m and all(m.get(key) == value for key, value in dimensions.items())
        )
