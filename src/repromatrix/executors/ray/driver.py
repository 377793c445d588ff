"""This process as the driver of a Ray cluster: joined once per run, with the defaults of
Ray's that a run cannot live with set otherwise.

Apart from the executor because joining is done once, before any cell, and is all about
Ray's process-wide state (its environment variables, its SIGTERM handler, its log
output, the head's watch), where the executor is about cells.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading

import ray

from repromatrix.errors import ClusterUnreachable, MissingToolError
from repromatrix.executors.ray.cluster import (
    checked_address,
    connecting,
    current_head,
    head_as_named,
    quiet_driver,
    watch_head,
)
from repromatrix.executors.ray.held_stderr import ray_notes_held
from repromatrix.options import SessionConfig


def join(config: SessionConfig) -> str:
    """Join the cluster `--ray-address` names; the cluster's head, as the cluster names it."""
    address = checked_address(config.ray_address, config.ray_address_from)
    head = current_head() if address == "auto" else address
    # ray.init installs a SIGTERM handler of its own (a C++ stack dump, exit 15): a
    # cancelled CI job must stop the run as Ctrl-C does, with finished cells kept.
    term = signal.getsignal(signal.SIGTERM)
    # Ray retries a task its memory monitor killed for ever by default ("infinite oom
    # retries remaining"): a cell that needs more memory than its node has hung the
    # run. Such a cell is recorded, not run again (`RayExecutor._outcome`); the owner of the
    # tasks, this driver, reads the bound when it connects.
    os.environ.setdefault("RAY_task_oom_retries", "0")
    # Calls a stopped run never waited for (submitted ahead) failed too: Ray printed
    # each as "Unhandled error" with its stack; they have no record, as they should.
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    # Ray's client logs each failed try to standard error itself (`held_stderr`); a
    # cluster of this run's own ("local") starts servers that would inherit the hold.
    held = ray_notes_held() if address != "local" else contextlib.nullcontext(2)
    with held as err, connecting(head or address, os.environ, err):
        try:
            ray.init(
                address=address,
                ignore_reinit_error=True,
                log_to_driver=False,
                logging_level="ERROR",
                include_dashboard=False if address == "local" else None,
            )
        except ConnectionError as exc:  # the head answers, no node of it does here
            raise ClusterUnreachable(
                f"--ray-address {head or address}: the cluster answered but could not "
                f"be joined ({' '.join(str(exc).split())[:200]}); check that its nodes "
                "(raylets) are running"
            ) from None
        except RuntimeError as exc:  # a driver of another Python (3.12, or 3.11.2) or Ray
            if not str(exc).startswith("Version mismatch"):
                raise
            raise MissingToolError(_mismatch(head or address, str(exc))) from None
    if callable(term) and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, term)
    quiet_driver()
    if address != "local":
        watch_head(head)
    return head_as_named(head)


def _mismatch(address: str, said: str) -> str:
    """Ray's "Version mismatch" (the cluster's Ray and Python, then this process's, over
    six lines) as one line that says what to do: ray.init's RuntimeError was an internal
    error (exit 70, "report it") where the user's driver ran in another venv."""
    found = re.findall(r"Ray: (\S+)\s+Python: (\S+)", said)
    if len(found) == 2:
        (ray, python), (own_ray, own_python) = found
        versions = (
            f"the cluster runs Ray {ray} on Python {python}, this driver Ray {own_ray} on "
            f"Python {own_python}"
        )
    else:  # another Ray's words
        versions = " ".join(said.split())[:300]
    return (
        f"--ray-address {address}: {versions}, and Ray joins only the same versions: run "
        "repromatrix with the Python (and Ray) the cluster's nodes were started with"
    )
