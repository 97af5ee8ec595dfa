"""The policy file as the function reads it: loaded, validated, recorded, cached, and checked on each request.

pydantic checks a file against the policy's records (domain/policy/records.py), but its import is about half of
a cold start, so that happens when the function is built: ``python -m voice_access.config.policy_check FILE``
validates the file and writes a record beside it. At run time a file whose record matches is read without
pydantic; any other file is validated then, exactly as strictly.

The build's policy check imports this module with pydantic alone: nothing here may import Powertools at the top.
"""

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

from voice_access.config.settings import refused
from voice_access.domain import limits, session_fields
from voice_access.domain.limits import Budget, Limits, Window
from voice_access.domain.policy import model, records
from voice_access.domain.policy.model import ExpiryBounds, FieldRule, Policy, Price, Profile, Requirements
from voice_access.domain.policy.records import as_dataclasses

# The code that judges a policy file (with this module's own validate): a record stands for the file and for it.
_JUDGES = (records.__file__, model.__file__, limits.__file__, session_fields.__file__)


class PolicyError(Exception):
    """The policy file cannot be used: the service refuses to mint until it is fixed."""


def load_policy(path: Path) -> Policy:
    """The policy in ``path``: read as it is if its validation record matches, else validated now."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    record = _record(path)
    if record is not None and record == validation_record(raw):
        try:
            return Policy.from_document(json.loads(raw))
        except (ValueError, TypeError, KeyError, AttributeError):
            pass  # the record vouches for what it should not: validate, and name the problem
    return validate(path, raw)


def validate(path: Path, raw: bytes) -> Policy:
    """The policy in ``raw`` checked by pydantic, or a PolicyError naming every problem. Without pydantic
    (a deployed function does not carry it) a PolicyError: nothing mints with an unchecked policy."""
    try:
        from pydantic import TypeAdapter, ValidationError  # here only: about 80 ms of import
    except ImportError:
        raise PolicyError(
            f"policy file {path} has no validation record that matches it, and this function cannot validate it "
            "(pydantic is a build-time tool, not deployed): build the function with `sam build`, which validates "
            "and records the bundled policy, or run `python -m voice_access.config.policy_check FILE` with pydantic "
            "installed and deploy the record it writes (FILE.validated) beside the file"
        ) from None
    as_dataclasses(FieldRule, ExpiryBounds, Requirements, Window, Budget, Limits, Price, Profile, Policy)
    try:
        return TypeAdapter(Policy).validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()) and (where := _json_problem(raw)):
            raise PolicyError(f"policy file {path} is not valid JSON: {where}") from None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors())
        raise PolicyError(f"policy file {path} is invalid: {problems}") from None


def _json_problem(raw: bytes) -> str | None:
    """Where and what the JSON syntax error in ``raw`` is, as a person finds it in an editor (line and column)."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        return f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
    except ValueError:  # not UTF-8: pydantic's words say so
        return None
    return None


def validation_record(raw: bytes) -> str | None:
    """What a validated policy's record holds: a digest of the file and of the code that judged it, so
    a record stands for neither a changed file nor changed rules. None when that code cannot be read."""
    digest = hashlib.sha256(raw)
    try:
        for judge in (*_JUDGES, __file__):
            digest.update(Path(judge).read_bytes())
    except OSError:
        return None
    return digest.hexdigest()


def record_path(path: Path) -> Path:
    return path.with_name(path.name + ".validated")


def _record(path: Path) -> str | None:
    try:
        return record_path(path).read_text().strip()
    except OSError:
        return None


class PolicyChange(records.Record):
    """What a changed policy file did to the policy in use: the profiles it added, removed and changed (and the
    other top-level settings it changed), or why it was refused (and the last good policy kept)."""

    path: Path
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    settings_changed: tuple[str, ...] = ()
    refused: str | None = None

    @classmethod
    def between(cls, path: Path, old: Policy | None, new: Policy) -> "PolicyChange":
        before = old.profiles if old is not None else {}
        return cls(
            path,
            added=tuple(sorted(new.profiles.keys() - before.keys())),
            removed=tuple(sorted(before.keys() - new.profiles.keys())),
            changed=tuple(
                sorted(name for name in new.profiles.keys() & before.keys() if before[name] != new.profiles[name])
            ),
            settings_changed=tuple(
                name
                for name in ("default_profiles", "spend_brake", "prices", "money_brake")
                if old is not None and getattr(old, name) != getattr(new, name)
            ),
        )


class _Held:
    __slots__ = ("policy", "refusal", "version")

    def __init__(self, version: tuple[int, int, int] | None, policy: Policy | None, refusal: str | None) -> None:
        self.version = version  # of the file as last read
        self.policy = policy  # the last good one; None while the file has never been valid
        # Why the file has never been valid: the message, never the exception, whose traceback would grow with every
        # raise and keep each request's frames (its event, bearer token and all) alive.
        self.refusal = refusal


class _PolicyCache:
    """The policy, read once per container and again when its file changes (a deployed one never does; `make
    run`'s may be edited while it runs). A file that was never valid is read again and refused on every
    request (fail closed; a passing read error does not stick); a change that is not valid is refused once and
    the last good policy keeps serving. Each change is reported to ``on_change``, once."""

    def __init__(self) -> None:
        self._held: dict[Path, _Held] = {}
        self._lock = threading.Lock()  # make run's gateway invokes the function from several threads

    def __call__(self, path: Path, on_change: Callable[[PolicyChange], None] | None = None) -> Policy:
        version = _version(path)
        held = self._held.get(path)
        if held is None or held.version != version or held.policy is None:
            with self._lock:
                held = self._held.get(path)
                if held is None or held.version != version or held.policy is None:
                    held = self._read(path, version, held, on_change)
        if held.policy is None:
            raise PolicyError(held.refusal or f"policy file {path} cannot be used")
        return held.policy

    def _read(
        self,
        path: Path,
        version: tuple[int, int, int] | None,
        held: _Held | None,
        on_change: Callable[[PolicyChange], None] | None,
    ) -> _Held:
        last_good = held.policy if held is not None else None
        try:
            policy = load_policy(path)
        except PolicyError as exc:
            self._held[path] = _Held(version, last_good, str(exc) if last_good is None else None)
            change = PolicyChange(path, refused=str(exc)) if last_good is not None else None
        else:
            self._held[path] = _Held(version, policy, None)
            change = PolicyChange.between(path, last_good, policy) if held is not None else None
        if change is not None and on_change is not None:
            on_change(change)
        return self._held[path]

    def cache_clear(self) -> None:
        with self._lock:
            self._held.clear()


def _version(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except OSError:
        return None  # load_policy says why it cannot be read
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


cached_policy = _PolicyCache()


def checked_policy(path: Path) -> Policy:
    """The policy in ``path``; ServiceMisconfigured (logged and counted) when its file cannot be used."""
    try:
        return cached_policy(path, on_change=_log_policy_change)
    except PolicyError as exc:
        raise refused("policy_invalid", str(exc)) from None


def _log_policy_change(change: PolicyChange) -> None:
    """A policy file changed under a running function (only `make run`'s does): what changed, or why not."""
    from voice_access.observability import count, logger  # here, not at the top: see this module's docstring

    if change.refused is not None:
        logger.error(
            "policy change refused: the last good policy keeps serving",
            policy_path=str(change.path),
            problem=change.refused,
        )
        count("ConfigurationErrors", reason="policy_invalid")
        return
    logger.info(
        "policy reloaded",
        policy_path=str(change.path),
        profiles_added=list(change.added),
        profiles_removed=list(change.removed),
        profiles_changed=list(change.changed),
        settings_changed=list(change.settings_changed),
    )
