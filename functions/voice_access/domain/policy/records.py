"""The record type: a frozen value, cheap to define, that pydantic can read as a dataclass without being one at
run time. The policy is made of them, and so are the domain's other values (the caller, a window's count).

The policy is plain frozen records. pydantic checks a file against them as dataclasses (types, strictly, and no
unknown keys; each class's ``__post_init__`` checks the rest), but its import is about half of a cold start, so
that happens when the function is built (config/policy_file.py): only there does `as_dataclasses` make them so.
"""

from collections.abc import Callable
from typing import Any

# How pydantic checks a policy file against these classes: JSON types as they are (no "5" for 5), and
# no key the classes do not name.
PYDANTIC_CONFIG = {"extra": "forbid", "strict": True, "allow_inf_nan": False}


class Factory:
    """A field's default made anew for each record, as a dataclass's ``field(default_factory=...)``."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


_REQUIRED = object()


class Record:
    """A frozen record: built from its annotated fields (positionally or by name, defaults filled in), then
    ``__post_init__``; compared, hashed and shown by its fields. What ``@dataclass(frozen=True)`` makes, without
    generating code for it: that costs about 0.8 ms a class, 6 ms of every cold start for the policy's seven
    (make bench). pydantic reads dataclasses, so where a policy is validated, `as_dataclasses` makes them so."""

    _record_fields: tuple[tuple[str, Any], ...] = ()
    _record_names: frozenset[str] = frozenset()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls._record_fields = tuple((name, cls.__dict__.get(name, _REQUIRED)) for name in cls.__annotations__)
        cls._record_names = frozenset(cls.__annotations__)  # once per class, not once per keyword argument

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._record_fields
        if len(args) > len(fields):
            raise TypeError(f"{type(self).__name__} takes at most {len(fields)} arguments")
        values = dict(zip((name for name, _ in fields), args, strict=False))
        for name, value in kwargs.items():
            if name in values or name not in self._record_names:
                raise TypeError(f"{type(self).__name__} got an unexpected or repeated argument '{name}'")
            values[name] = value
        own = self.__dict__  # frozen to assignment (__setattr__), so filled in directly: no field is a descriptor
        for name, default in fields:
            if name in values:
                own[name] = values[name]
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__} is missing the argument '{name}'")
            else:
                own[name] = default.make() if isinstance(default, Factory) else default
        if post_init := getattr(self, "__post_init__", None):
            post_init()

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name, _ in self._record_fields)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot assign to field '{name}': a record is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field '{name}': a record is frozen")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and type(other) is type(self) and other._values() == self._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in zip(self.__annotations__, self._values(), strict=True))
        return f"{type(self).__name__}({shown})"


def as_dataclasses(*records: type[Record]) -> None:
    """The given records as the frozen dataclasses pydantic reads (once per process; a record made before stays
    as it is)."""
    import dataclasses  # here only, with pydantic

    for record in records:
        if "__dataclass_fields__" in record.__dict__:
            continue
        for name, default in record._record_fields:
            if isinstance(default, Factory):
                setattr(record, name, dataclasses.field(default_factory=default.make))
        dataclasses.dataclass(frozen=True)(record)
