"""The README's generated table: the part between two markers that `report --readme`
replaces, the rest of the file left as it is."""

from __future__ import annotations

from pathlib import Path

from repromatrix import outputs
from repromatrix.errors import OutputError, UsageError

README_BEGIN = "<!-- reproduced:begin -->"
README_END = "<!-- reproduced:end -->"


def readme_section(text: str, path: Path) -> tuple[int, int]:
    if text.count(README_BEGIN) > 1 or text.count(README_END) > 1:
        raise UsageError(
            f"{path}: more than one '{README_BEGIN}' ... '{README_END}' pair; keep the one "
            "where the table belongs"
        )
    begin, end = text.find(README_BEGIN), text.find(README_END)
    if 0 <= end < begin:
        raise UsageError(
            f"{path}: '{README_END}' comes before '{README_BEGIN}'; put the begin marker first"
        )
    if begin < 0 or end < begin:
        raise UsageError(
            f"{path}: no '{README_BEGIN}' ... '{README_END}' markers; add them where the "
            "table belongs"
        )
    return begin + len(README_BEGIN), end


#: Larger than any README; a bound, so that `--readme /dev/zero` is an error, not all memory.
MAX_README_BYTES = 16 * 2**20


def read_readme(path: Path) -> str:
    if path.exists() and not path.is_file():
        raise UsageError(f"--readme {path}: not a regular file; pass the README to update")
    if not path.exists():  # said with the way out: "cannot read (No such file ...)" was all
        what = "no such file"
        if path.is_symlink():
            try:
                what = f"a link to {path.resolve()}, which does not exist"
            except (OSError, RuntimeError):  # RuntimeError: Python 3.11-3.12's "Symlink loop"
                # No README to read, and no path the table could be written to: an
                # output that cannot be written (exit 10), as `check_file` says of one.
                raise OutputError(
                    f"--readme {path}: a link that leads nowhere (a loop); remove it or "
                    "pass the README to update"
                ) from None
        raise UsageError(
            f"--readme {path}: {what}; pass the README to update (one with the "
            f"'{README_BEGIN}' and '{README_END}' markers)"
        )
    try:
        if path.stat().st_size > MAX_README_BYTES:
            raise UsageError(f"--readme {path}: larger than 16 MiB; pass the README to update")
        with path.open(encoding="utf-8", newline="") as f:  # its line endings as they are
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"--readme {path}: cannot read ({why})") from None


def update_readme(path: Path, table: str) -> None:
    """Replace the generated table between the markers, leaving the rest untouched (the
    file is replaced whole: a full disk leaves the old one)."""
    text = read_readme(path)
    start, end = readme_section(text, path)
    # The table's lines end as the file's do (a CRLF file stays one).
    eol = "\r\n" if "\r\n" in text else "\n"
    new = text[:start] + eol + eol.join(table.strip().splitlines()) + eol + text[end:]
    outputs.write_text(path.resolve(), new, "--readme")
