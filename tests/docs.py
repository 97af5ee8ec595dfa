"""The documentation as the tests read it: README.md, then docs/*.md, and the code blocks in them, so that a
test runs an example wherever the documentation keeps it."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def documentation() -> dict[Path, str]:
    """Each page's text by its path: README.md first, then docs/*.md in name order."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {page: page.read_text() for page in pages}


def code_blocks(language: str) -> list[str]:
    """Every ```language block of the documentation, as written, in the order of documentation()."""
    fence = re.compile(rf"```{re.escape(language)}\n(.*?)```", re.S)
    return [block for text in documentation().values() for block in fence.findall(text)]


def code_block(language: str, containing: str) -> str:
    """The first ```language block containing ``containing``."""
    found = [block for block in code_blocks(language) if containing in block]
    assert found, f"no ```{language} block of README.md or docs/*.md contains {containing!r}"
    return found[0]
