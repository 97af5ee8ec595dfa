"""The deployment the tests stand in for: its region (the local AWS's, and the transformed template's stacks'),
the function's logical id in template.yaml, and the environment the template gives it."""

from local.gateway import LocalApi
from tests.paths import TEMPLATE

REGION = "us-east-1"
FUNCTION = "TokenVendingFunction"


def template_environment(
    overrides: dict[str, str], physical: dict[str, dict[str, str]] | None = None
) -> dict[str, str]:
    """The function's environment exactly as template.yaml gives it, for these parameter overrides;
    ``physical``: resources that exist locally (local.cloudformation.Resolver's), e.g. LocalTables.physical."""
    return LocalApi.from_template(TEMPLATE, overrides, physical=physical).functions[FUNCTION].environment
