"""The policy's record type: a frozen dataclass in behaviour without being one at run time, made one for pydantic
only where a policy is validated."""

import dataclasses

import pytest
from pydantic import TypeAdapter

from voice_access.domain.policy.records import Factory, Record, as_dataclasses


def test_a_record_behaves_as_a_frozen_dataclass_without_being_one() -> None:
    # Given a record class of the policy's kind, never made a dataclass (as in a deployed function)
    class Pair(Record):
        left: int
        right: int = 2
        extra: list[int] = Factory(list)  # type: ignore[assignment]

        def __post_init__(self) -> None:
            if self.left < 0:
                raise ValueError("left must not be negative")

    # When / Then it is built positionally or by name, with defaults (a fresh one for a factory) and its check
    assert Pair(1) == Pair(left=1, right=2) != Pair(1, 3)
    assert Pair(1).extra == []
    assert Pair(1).extra is not Pair(1).extra
    assert repr(Pair(1, 3)) == "Pair(left=1, right=3, extra=[])"
    with pytest.raises(ValueError, match="negative"):
        Pair(-1)
    for wrong in ({}, {"left": 1, "other": 2}, {"left": 1, "right": 2, "extra": [], "more": 1}):
        with pytest.raises(TypeError):
            Pair(**wrong)
    with pytest.raises(TypeError):
        Pair(1, left=1)
    with pytest.raises(AttributeError):
        Pair(1).left = 2
    assert "__dataclass_fields__" not in Pair.__dict__


def test_a_record_made_a_dataclass_is_a_frozen_one_pydantic_reads() -> None:
    # Given a record class, made a dataclass as where a policy is validated (twice: the second changes nothing)
    class Pair(Record):
        left: int
        extra: list[int] = Factory(list)  # type: ignore[assignment]

    as_dataclasses(Pair)
    as_dataclasses(Pair)

    # When / Then it is a frozen dataclass, with a fresh default for each record
    assert "__dataclass_fields__" in vars(Pair)
    assert Pair(1) == Pair(left=1, extra=[])
    assert Pair(1).extra is not Pair(1).extra
    with pytest.raises(dataclasses.FrozenInstanceError):
        Pair(1).left = 2
    # and pydantic builds it from a document
    assert TypeAdapter(Pair).validate_python({"left": 3, "extra": [4]}) == Pair(3, [4])
