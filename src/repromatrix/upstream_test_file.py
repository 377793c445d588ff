"""A `bisect --test` file as `--test-from` has it: its exact bytes (laid over each commit's
tree as they are), and the param through which the upstream script takes them."""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path

from repromatrix.gitrepo import GitError, GitRepo

#: The param naming the pinned file by its digest (the script reads `inputs/<sha256>`).
BY_DIGEST = "test_file_sha256"
#: The param an older copy of repros/upstream_pytest.py takes the file's base64 in, on
#: its command line under --isolate, where one argument holds at most 128 KiB.
BY_CONTENT = "test_file_b64"
#: The most base64 such a copy is given: its --params beside it stay under 128 KiB.
MAX_BY_CONTENT = 120_000


def file_param(script: Path) -> str:
    """The param through which `script` (an upstream_pytest.py) takes the pinned test file:
    BY_DIGEST, or BY_CONTENT for a copy older than it (beside a matrix.yaml), whose cells
    keep their keys, and reuse the runs stored of them."""
    try:
        text = script.read_text(errors="replace")
    except OSError:
        return BY_DIGEST  # the run reads it again and says why it cannot
    return BY_DIGEST if f'"{BY_DIGEST}"' in text else BY_CONTENT


def file_bytes(repo: GitRepo, sha: str, path: str) -> bytes | str:
    """The file's bytes at `sha`, or why they cannot be a test file (a link). `path` is a
    file there (`GitRepo.show` said so); GitError where git cannot write it out."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            repo.archive(sha, Path(tmp), path)
        except tarfile.TarError:  # a link out of the tree: the "data" filter refuses it
            return "is a symbolic link out of the repository; give the file it points to"
        found = Path(tmp, path)
        if found.is_symlink():
            return f"is a symbolic link (to {os.readlink(found)}); give the file it points to"
        try:
            return found.read_bytes()
        except OSError as exc:
            raise GitError(f"cannot read {path} as git wrote it out: {exc.strerror}") from None
