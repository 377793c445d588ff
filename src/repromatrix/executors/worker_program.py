"""The worker program's copy in `<cache>/workers/` that a host's workers run (Docker mounts
the same files): a folder that holds only it and the files it imports."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from repromatrix.executors.workers import WORKER_FILES, WORKER_MAIN


def program_in(workroot: Path) -> str:
    """worker_main.py in a folder of `workroot` that holds only it and the files it
    imports, as Docker mounts them: `python FILE` puts FILE's folder first on the cell's
    sys.path, and repromatrix's executors/ holds packages named `ray` and `docker` (a
    library's `import ray` found ours). Copies, not links: Python follows a link to the
    folder of its target."""
    files = WORKER_FILES
    try:
        digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]
        folder = workroot / f"program-{digest}"
        if not (folder / WORKER_MAIN.name).is_file():
            workroot.mkdir(parents=True, exist_ok=True)
            made = Path(tempfile.mkdtemp(dir=workroot, prefix=".program-"))
            for f in files:
                shutil.copyfile(f, made / f.name)
            try:
                made.rename(folder)  # whole or not at all: another run may race us
            except OSError:
                shutil.rmtree(made, ignore_errors=True)
        return str(folder / WORKER_MAIN.name)
    except OSError:  # a cache that takes no files fails its cells elsewhere, said so
        return str(WORKER_MAIN)
