"""REPROMATRIX_RAY_SAY_WAIT_S: how long a slot waits for a GPU (or CPU) other jobs hold
before the run says so."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from repromatrix.errors import ExitCode, UsageError
from repromatrix.executors.ray.waits import SAY_AFTER_S, say_after_seconds


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "1e3", "86401", " 5"])
def test_a_say_wait_that_is_no_number_of_seconds_is_refused_in_one_line(text: str) -> None:
    with pytest.raises(UsageError) as refused:
        say_after_seconds(text)
    said = str(refused.value)
    assert said.startswith(f"REPROMATRIX_RAY_SAY_WAIT_S={text!a}: give the seconds "), said
    assert "\n" not in said
    assert refused.value.exit_code is ExitCode.USAGE


@pytest.mark.parametrize(
    ("text", "seconds"), [("", SAY_AFTER_S), ("0", 0.0), ("5", 5.0), (".5", 0.5)]
)
def test_a_say_wait_is_its_seconds_and_unset_the_default(text: str, seconds: float) -> None:
    assert say_after_seconds(text) == seconds
