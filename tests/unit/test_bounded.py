"""The fuzz tests' meter sees a call's CPU time and its peak memory, freed or not."""

from __future__ import annotations

import pytest
from bounded import Spending


def test_a_peak_freed_before_the_block_ends_is_counted() -> None:
    with Spending() as spent:
        block = bytearray(b"x" * (96 << 20))  # written, so resident
        del block
    assert spent.peak_bytes >= 90 << 20
    with Spending() as small:
        sum(range(1000))
    assert small.peak_bytes < 16 << 20  # the earlier peak is not this block's


def _spend_then_raise() -> None:
    sum(i * i for i in range(2_000_000))
    raise ZeroDivisionError


def test_a_block_that_raises_is_measured_too() -> None:
    spent = Spending()
    with pytest.raises(ZeroDivisionError), spent:
        _spend_then_raise()
    assert spent.cpu_s > 0.01
