"""The function's per-container caches, owned here: conftest.py's autouse fixture empties them around every test,
as a new execution environment starts with them empty, and tests/local_api.py around each API it serves.

Not here: the memos keyed by everything they depend on (connection pools by URL or port, a metric document's shape
by its names), which a change of environment cannot make stale.
"""

from voice_access.clients.secrets import api_keys
from voice_access.config import mint_settings
from voice_access.config.policy_file import cached_policy


def reset() -> None:
    """Every cache empty: the settings, the policy file's, and the API keys with their Secrets Manager client."""
    reread_settings()
    cached_policy.cache_clear()
    api_keys.clear()


def reread_settings() -> None:
    """The settings read again from the environment when next used, as after a change to it; the keys and the
    policy still held, as in a warm container."""
    mint_settings.get_settings.cache_clear()  # the minting function's reading, the service's settings within it
