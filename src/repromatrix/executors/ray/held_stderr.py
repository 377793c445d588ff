"""Ray's own warnings kept off the command's output while the driver joins the cluster.

Ray's C++ client logs each failed try to reach a head to file descriptor 2, in glog's
form and whatever logging level Python asked for (`RAY_BACKEND_LOG_LEVEL` is read only
once a worker's logging starts): an address where something else listens printed eight
`rpc_client.h:153: Failed to connect to GCS at address ... within 5 seconds` lines in the
120 s wait before repromatrix's one line; a head that answered late printed them on a
run that then went on. The descriptor is held in a file while `ray.init` runs; what else
was written there meanwhile (anything that is not such a warning) is written out after.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

#: A line of Ray's C++ log at level I(nfo) or W(arning): `[2026-12-07 05:27:00,577 W
#: 24406 24406] rpc_client.h:153: ...`. Errors (E, F) are written out.
_RAY_NOTE = re.compile(rb"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [IW] \d+ \d+\] ")
#: The most written out afterwards (Ray's client does not stop trying on its own).
_KEPT = 64 * 1024


@contextlib.contextmanager
def ray_notes_held() -> Iterator[int]:
    """Inside, file descriptor 2 goes to a temporary file; yields a descriptor of the real
    standard error, for what must be said at once (the give-up line before `os._exit`).
    Where no temporary file can be made, nothing is held."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    try:
        held = tempfile.TemporaryFile()  # noqa: SIM115 -- entered below, once it is made
    except OSError:
        yield 2
        return
    with held:
        try:
            real = os.dup(2)
        except OSError:
            yield 2
            return
        os.dup2(held.fileno(), 2)
        try:
            yield real
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(real, 2)
            os.close(real)
            held.seek(0)
            said = b"".join(
                line for line in held.read(_KEPT).splitlines(keepends=True)
                if not _RAY_NOTE.match(line)
            )  # fmt: skip
            with contextlib.suppress(OSError):
                os.write(2, said)
