"""Matrix values checked for what they become (pure: each check returns a problem or None).

A value of matrix.yaml ends up on a command line (pip's, git's, Docker's), in a path, in a
cell id or in a report. Each is held to the grammar of where it goes: image references to
the OCI distribution grammar, package names to PEP 508, PyPI versions to PEP 440, git
revisions and URLs to what git cannot read as an option, scripts to files inside the
repository. All of them ASCII: a fullwidth digit in a tag is not the digit it looks like.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

from repromatrix.config.yamlsrc import display_name
from repromatrix.model import Revision, SourceKind

# -- OCI image references (github.com/distribution/reference, regexp.go) ------------------

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
#: re.ASCII: `\w` must not take a fullwidth or Arabic-Indic digit for a tag character.
DOCKER_REF = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)
#: distribution/reference's NameTotalLengthMax.
MAX_IMAGE_NAME = 255


def image_ref(ref: str) -> str | None:
    m = DOCKER_REF.fullmatch(ref) if ref.isascii() else None
    if m is None or len(m.group("name")) > MAX_IMAGE_NAME:
        return (
            "is not a valid Docker image reference; write it as "
            "[registry/]repository[:tag][@sha256:digest], lower-case"
        )
    return None


# -- Python packaging ----------------------------------------------------------------------

_PACKAGE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", re.ASCII)
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*", re.ASCII)


def _plain(text: str) -> bool:
    """ASCII, printable, without spaces at either end (what pip and git must see)."""
    return text.isascii() and text.isprintable() and text == text.strip() and bool(text)


def package_name(name: str) -> str | None:
    if not _plain(name) or len(name) > 200 or not _PACKAGE.fullmatch(name):
        return "is not a PyPI project name (PEP 508: letters, digits, '.', '_', '-')"
    return None


def pypi_version(version: str) -> str | None:
    if not _plain(version) or len(version) > 100 or " " in version:
        return "is not a PEP 440 version (e.g. 0.2.3, 1.0.post1, 2.1rc1)"
    try:
        Version(version)
    except InvalidVersion:
        return "is not a PEP 440 version (e.g. 0.2.3, 1.0.post1, 2.1rc1)"
    return None


def requirement(text: str) -> str | None:
    problem = "is not a PEP 508 requirement (e.g. 'tqdm' or 'apache-tvm-ffi==0.1.3')"
    if not _plain(text) or len(text) > 500:
        return problem
    try:
        Requirement(text)
    except InvalidRequirement:
        return problem
    return None


#: A param name: a key of the repro's `DEFAULT_PARAMS` that `run(params)` reads
#: (`params["atol"]`), hence a Python name, in ASCII as every other name of a matrix is.
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}", re.ASCII)


def param_name(name: str) -> str | None:
    if not _PARAM.fullmatch(name):
        return (
            "must be 1 to 64 ASCII letters, digits and '_', not starting with a digit (a "
            "Python name); rename it"
        )
    return None


def module_name(name: str) -> str | None:
    if len(name) > 200 or not _MODULE.fullmatch(name):
        return "is not a Python module name (e.g. torch or flash_attn.ops)"
    return None


# -- git ------------------------------------------------------------------------------------

#: What a revision may hold: a sha, a tag or branch (`v0.5.2`, `origin/main`), a suffix
#: (`main~2`, `v1^`). No `:` (git reads `rev:path` as a file), no glob or space, no `..`;
#: but `:/text`, git's newest commit whose message matches `text` (`git_rev`).
_REV = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/+~^@{}-]*", re.ASCII)
#: `<transport>::<address>` runs a remote helper (`ext::sh -c ...`): never from a matrix.
_HELPER = re.compile(r"^[A-Za-z0-9+.-]+::")
_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git+ssh://")


def git_rev(rev: str) -> str | None:
    if rev.startswith(":/") and len(rev) > 2 and _plain(rev) and len(rev) <= 200:
        return None  # git's newest commit whose message matches: one argument, never a path
    if not _plain(rev) or len(rev) > 200 or not _REV.fullmatch(rev) or ".." in rev:
        return (
            "is not a git revision (a commit, tag or branch: letters, digits and ._/+~^@-, "
            "not starting with '-')"
        )
    return None


def git_url(url: str) -> str | None:
    problem = (
        "is not a git URL or path (https://, ssh://, git://, file://, user@host:path or a "
        "local path; never starting with '-')"
    )
    if not _plain(url) or len(url) > 2000 or url.startswith("-") or " " in url:
        return problem
    if _HELPER.match(url):
        return problem
    if "$" in url:  # git would read `${X}` as a folder of that name, `$TOKEN` as a user
        return (
            "holds '$': nothing in a matrix is expanded (environment variables are the "
            "host's, a cell key is not); write the URL or path"
        )
    if "://" in url and not url.lower().startswith(_URL_SCHEMES):
        return problem
    return None


# -- text ---------------------------------------------------------------------------------

_LABEL = re.compile(r"[A-Za-z0-9._+~^@/#{}!-]{1,64}", re.ASCII)  # `!`: PEP 440 epochs (1!2.0)


def label(text: str) -> str | None:
    if not _LABEL.fullmatch(text) or text.startswith("-"):
        return (
            "is not a usable label (at most 64 letters, digits and ._+~^@/#{}!-, not "
            "starting with '-')"
        )
    return None


def one_line(text: str, limit: int) -> str | None:
    if "\n" in text or "\r" in text or len(text) > limit:
        return f"must be one line of at most {limit} characters"
    return None


def web_url(url: str) -> str | None:
    if not _plain(url) or " " in url or len(url) > 2000:
        return "must be one URL (ASCII, no spaces), e.g. https://github.com/org/repo/issues/1"
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", url)
    if scheme and scheme.group(1).lower() not in ("http", "https"):  # javascript:, data:
        return "must be an http(s) URL, e.g. https://github.com/org/repo/issues/1"
    return None  # or a plain reference ("org/repo#941"), shown as text


def year_month(text: str) -> str | None:
    """`YYYY-MM` (the schema checked the shape) with a month that exists."""
    if ascii_digits(text) is not None or not 1 <= int(text[5:7]) <= 12:
        return "must be a year and month, YYYY-MM, with a month from 01 to 12"
    return None


def ascii_digits(text: str) -> str | None:
    if not text.isascii():
        return "must be written with ASCII digits"
    return None


# -- scripts ------------------------------------------------------------------------------


@cache
def repository_root(folder: Path) -> Path:
    """The git work tree holding `folder` (a `.git` entry, no git call needed), else
    `folder` itself: where a matrix's scripts may live."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


#: The fix said after each way a repro's script is not one.
_GIVE_A_SCRIPT = "; give the path of the repro's Python file, relative to the matrix"


_NOT_EXPANDED = (
    "does not exist; nothing in a matrix is expanded ($VARIABLES, ~): write the path "
    "relative to the matrix's folder"
)


def _misplaced(resolved: Path, inside: Path) -> str | None:
    """Why a script's resolved path is no place for a repro, if it is not."""
    if not resolved.is_relative_to(inside):
        return (
            f"is outside the repository ({display_name(str(inside))}); keep repro "
            "scripts inside it (links are followed)"
        )
    if ".git" in resolved.relative_to(inside).parts:
        # git's own files (config, hooks) are inside the repository but never a repro:
        # running one would be a typo at best, and its digest changes with every fetch
        return "is inside git's own folder (.git)" + _GIVE_A_SCRIPT
    return None


def script_path(root: Path, script: str) -> tuple[Path | None, str | None]:
    """The script a matrix names, resolved (symlinks too), if it is a regular file inside
    the repository; else the problem."""
    if not script.isprintable() or not script.strip() or len(script) > 1000:
        return None, "is not a path to a script" + _GIVE_A_SCRIPT
    try:
        resolved = (root / script).resolve()
        inside = repository_root(root.resolve())
        if misplaced := _misplaced(resolved, inside):
            return None, misplaced
        if not resolved.exists():
            # None: the caller's "does not exist" message, unless it looks expanded
            return None, _NOT_EXPANDED if "$" in script or script.startswith("~") else None
        if not resolved.is_file():
            return None, "is not a regular file" + _GIVE_A_SCRIPT
    except (OSError, RuntimeError, ValueError):  # a loop of links, a name too long
        return None, "cannot be resolved to a file" + _GIVE_A_SCRIPT
    return resolved, None


#: A git revision spelled as a commit hash or its abbreviation (seven digits at least, as
#: git abbreviates: a shorter all-hex name is more likely a tag or a branch).
_COMMIT_SPELLING = re.compile(r"[0-9a-fA-F]{7,64}")


def same_commit(rev: Revision, earlier: Iterable[Revision]) -> Revision | None:
    """The earlier git revision spelling the same commit as `rev`: one an abbreviation of
    the other (`27906fdb`, `27906fdbf1…`), in any case; None if none does."""
    if rev.kind is not SourceKind.GIT or not _COMMIT_SPELLING.fullmatch(rev.rev):
        return None
    mine = rev.rev.lower()
    for other in earlier:
        theirs = other.rev.lower()
        prefix = theirs.startswith(mine) or mine.startswith(theirs)
        if prefix and other.kind is SourceKind.GIT and _COMMIT_SPELLING.fullmatch(theirs):
            return other
    return None
