"""A record read twice counts once; records that only share a run are each kept."""

from __future__ import annotations

from recordfactory import result

from repromatrix.model import Status
from repromatrix.record_copies import Copies
from repromatrix.records import Result


def _run(key: str, slot: str, *, run_id: str = "run-1", **more: object) -> Result:
    return result(key).model_copy(
        update={
            "run_id": run_id,
            "started": "2026-11-22T00:00:00.001+00:00",
            "provenance": {"harness": {"slot": slot, "record": f"{key}-{slot}"}},
            **more,
        }
    )


def test_records_sharing_a_run_are_kept_and_their_copies_dropped_in_any_later_read() -> None:
    """The identity of a record is built only once another shares its key, run id and
    start: the first record's must then be built too, or its copy read third passes."""
    a, b = _run("k", "cpu0"), _run("k", "cpu1")
    other = _run("k", "cpu0", status=Status.REGRESSED)  # same slot, another verdict
    copies = Copies()
    assert copies.drop([a, b, a.model_copy()]) == [a, b]
    assert copies.drop([other, b.model_copy(), a.model_copy()]) == [other]
    assert copies.drop([a.model_copy(), other.model_copy()]) == []


def test_a_copy_read_second_in_another_file_is_dropped_where_its_run_was_seen_once() -> None:
    a = _run("k", "cpu0")
    copies = Copies()
    assert copies.drop([a]) == [a]
    assert copies.drop([a.model_copy()]) == []
    assert copies.drop([_run("k2", "cpu0")]) != []  # another key: another run


def test_records_without_a_run_id_or_start_are_never_copies() -> None:
    hand = result("k").model_copy(update={"run_id": "", "started": ""})
    unstarted = _run("k", "cpu0").model_copy(update={"started": ""})
    copies = Copies()
    assert copies.drop([hand, hand, unstarted, unstarted]) == [hand, hand, unstarted, unstarted]
