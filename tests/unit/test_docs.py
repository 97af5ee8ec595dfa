"""The README is a front door (short, the two commands first), and README.md and docs/ hold together: every
relative link reaches a file and a heading that exist, every shell block parses, and the commands read the
stack's name from samconfig.toml rather than naming it."""

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.docs import ROOT, code_blocks, documentation

README = ROOT / "README.md"
MOST_README_LINES = 300
# The title and a short intro come before the two commands.
COMMANDS_WITHIN_LINES = 12
_FENCE = re.compile(r"^\s*```")
_HEADING = re.compile(r"^(#{1,6}) +(.+?) *#*$")
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_INLINE_CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> list[str]:
    """The page's lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped (hyphens and underscores kept), spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    """The anchors of a page's headings, the second of a name suffixed -1 as GitHub does."""
    seen: dict[str, int] = {}
    anchors = set()
    for line in _prose(page.read_text()):
        if heading := _HEADING.match(line):
            anchor = _anchor(heading.group(2))
            anchors.add(f"{anchor}-{seen[anchor]}" if anchor in seen else anchor)
            seen[anchor] = seen.get(anchor, 0) + 1
    return anchors


def _relative_links(text: str) -> list[str]:
    links = [link for line in _prose(text) for link in _LINK.findall(_INLINE_CODE.sub("", line))]
    return [link for link in links if not re.match(r"[a-z][a-z0-9+.-]*:", link)]


def test_the_readme_is_at_most_300_lines() -> None:
    # Given the README
    lines = README.read_text().splitlines()

    # Then it is a front door: the rest lives in docs/
    assert len(lines) <= MOST_README_LINES, f"README.md has {len(lines)} lines: move a topic to docs/"


def test_the_readme_starts_with_the_two_commands() -> None:
    # Given the README's lines up to its first code block
    lines = README.read_text().splitlines()
    opening = next(number for number, line in enumerate(lines) if _FENCE.match(line))

    # Then the block comes right after the title and a short intro, with no section before it
    assert lines[0].startswith("# ")
    assert opening < COMMANDS_WITHIN_LINES, f"the first code block starts at line {opening + 1}"
    assert not any(line.startswith("#") for line in lines[1:opening])

    # And it is `make run`, then `make test`
    closing = next(number for number in range(opening + 1, len(lines)) if _FENCE.match(lines[number]))
    commands = [line.split("#")[0].strip() for line in lines[opening + 1 : closing]]
    assert lines[opening].strip() == "```bash"
    assert commands == ["make run", "make test"]


def test_every_relative_link_points_at_a_file_and_heading_that_exist() -> None:
    # Given every relative link of README.md and docs/*.md
    # When each is followed from its page
    broken = [problem for page, text in documentation().items() for problem in _broken_links(page, text)]

    # Then each reaches a file, and the heading it names
    assert broken == []


def _broken_links(page: Path, text: str) -> list[str]:
    """Each relative link of ``page`` (whose text is ``text``) that reaches no file, or no such heading in it."""
    broken = []
    for link in _relative_links(text):
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.is_file():
            broken.append(f"{link} (no such file)")
        elif anchor and anchor not in _anchors(target):
            broken.append(f"{link} (no such heading in {target.name})")
    return broken


def test_the_readme_links_every_page_of_docs() -> None:
    # Given the pages of docs/ and the README's relative links
    pages = {page.name for page in (ROOT / "docs").glob("*.md")}
    linked = {Path(link.partition("#")[0]).name for link in _relative_links(README.read_text())}

    # Then a reader finds every page from the front door
    assert pages - linked == set()


def test_the_link_check_sees_a_missing_heading_and_a_missing_file(tmp_path: Path) -> None:
    # Given a page with a good link, and links to a heading and a file that do not exist
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n## The stack's name: `STACK`\n\n[a](#the-stacks-name-stack) [b](#nope) [c](gone.md)\n")

    # When the check follows them
    broken = _broken_links(page, page.read_text())

    # Then the first reaches its heading, and the others are reported as reaching nothing
    assert _anchors(page) == {"page", "the-stacks-name-stack"}
    assert broken == ["#nope (no such heading in page.md)", "gone.md (no such file)"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
def test_every_shell_block_parses() -> None:
    # Given every ```bash block of the documentation
    for block in code_blocks("bash"):
        # When bash reads it without running it
        ran = subprocess.run(["bash", "-n"], input=block, capture_output=True, text=True, check=False)

        # Then it is valid shell
        assert ran.returncode == 0, f"{ran.stderr}in:\n{block}"


def test_no_command_names_a_stack_that_samconfig_names() -> None:
    # Given the stacks samconfig.toml names
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    stacks = {table["global"]["parameters"]["stack_name"] for table in config.values() if isinstance(table, dict)}

    # Then no code block of the documentation names one: each reads it from samconfig.toml
    named = [(stack, block) for block in code_blocks("bash") for stack in stacks if stack in block]
    assert named == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
@pytest.mark.parametrize("environment", ["default", "prod"])
def test_the_stack_name_command_reads_samconfigs(environment: str) -> None:
    # Given every command of the documentation that sets STACK, and a samconfig.toml environment
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    commands = {line for block in code_blocks("bash") for line in block.splitlines() if line.startswith("STACK=")}
    assert commands, "no ```bash block sets STACK"

    for command in commands:
        # When it runs in the repository's root for that environment
        ran = subprocess.run(
            ["bash", "-c", f'CONFIG_ENV={environment}\n{command}\nprintf %s "$STACK"'],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )

        # Then STACK is the name samconfig.toml gives that environment's stack
        assert ran.stdout == config[environment]["global"]["parameters"]["stack_name"]
