"""What a record says when the harness failed on a Ray node (not the repro)."""

from __future__ import annotations

import pytest

ray_exceptions = pytest.importorskip("ray.exceptions")

from repromatrix.errors import MissingToolError  # noqa: E402
from repromatrix.executors.ray.executor import _one_line  # noqa: E402

_TRACEBACK = (
    "ray::_SlotActor.run() (pid=28284, ip=192.0.2.2, actor_id=2b119cd0, repr=<repromatrix."
    "executors.ray.executor._SlotActor object at 0x7fb161d30f50>)\n"
    + '  File "/src/repromatrix/executors/ray/executor.py", line 85, in run\n' * 3
    + "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\n"
)


def _task_error(cause: BaseException) -> BaseException:
    error = ray_exceptions.RayTaskError("run", _TRACEBACK, cause)
    raised: BaseException = error.as_instanceof_cause()  # what ray.get raises
    return raised


def test_a_node_exception_is_named_not_rays_traceback() -> None:
    """The reason was the first 300 characters of Ray's traceback (pid, ip, actor id,
    carets) and never the exception: "harness failed on the node: ray::_SlotActor.run()
    (pid=28284, …^^^^ File "/…/executor.py"."""
    cause = NotADirectoryError(20, "Not a directory", "/srv/cache/scripts")
    assert _one_line(_task_error(cause)) == (
        "NotADirectoryError: [Errno 20] Not a directory: '/srv/cache/scripts'"
    )
    said = MissingToolError("--python /opt/py: cannot run it (not found); pass a Python")
    assert _one_line(_task_error(said)) == str(said)  # written for the user: as it is
    assert _one_line(ValueError("a\n  b")) == "a b"
