"""The types of flag values: paths and interpreters never empty, `--find-links` as pip
takes it, and counts and numbers written as people type them on a command line (ASCII
digits), each refusal saying what to give."""

from __future__ import annotations

import argparse
import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from repromatrix.safetext import printable


def path_arg(wants: str) -> Callable[[str], Path]:
    """The type of a path flag whose value must be `wants` ("a results folder"): an empty
    one (an unset variable) is not the current folder, and the refusal says what to give."""

    def parse(text: str) -> Path:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"an empty value; give {wants}")
        return Path(text)

    parse.__name__ = "path"  # argparse names the type in its own messages
    return parse


def links_arg(text: str) -> Path:
    """A --find-links folder, given as a path or as pip also takes it, a `file://` URL
    (read as a path, `file:///data/wheels` became `file:/data/wheels`, "not a directory")."""
    folder = path_arg("a folder of wheels or sdists (or a file:// URL of one)")
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        from urllib.request import url2pathname  # here: it imports http.client and email

        return folder(url2pathname(parts.path))
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        # Read as a path, it was refused as "http:/host/…: not a directory".
        raise argparse.ArgumentTypeError(
            f"{text}: a web page or index, not a folder; pip reads one from PIP_FIND_LINKS "
            "(or PIP_INDEX_URL), and so does the list of releases bisect tries"
        )
    return folder(text)


def program_arg(text: str) -> str:
    """An interpreter flag's value (a path, or a name found on PATH), as given; never empty."""
    path_arg("an interpreter: a path, or a name found on PATH (e.g. python3.11)")(text)
    return text


def address_arg(text: str) -> str:
    """A Ray head's address, as given; never empty: `--ray-address "$HEAD"` of an unset
    variable joined whatever cluster ran on this machine, as if no address were given."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            "an empty value; give the head's HOST:PORT (e.g. 10.0.0.5:6379)"
        )
    return text


def title_arg(text: str) -> str:
    """A report's title, as given; never blank (`--title "$TITLE"` of an unset variable,
    or spaces, wrote pages and a summary.md under an empty heading; so did one of terminal
    escape sequences alone, a colour code, which every output leaves out)."""
    if not printable(text).strip():
        raise argparse.ArgumentTypeError(
            "an empty title; give the report's title, or leave --title out ('repromatrix report')"
        )
    return text


# int() and float() take what no command line means as a number: a full-width '５' (an
# input method left on), '1_000' (Python's grouping), ' 3' (a quoted variable with a
# space); `--jobs ５` ran one job, `--repeat 1_0` ten repeats, as if typed so.
_COUNT = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.I
)


def count_arg(text: str) -> int:
    """A whole number in the digits 0-9 (a leading '-' is left to each flag's range check,
    which says the range)."""
    if not _COUNT.fullmatch(text):
        raise argparse.ArgumentTypeError(_not_a_number(text, "a whole number", "4"))
    return int(text)


def number_arg(text: str) -> float:
    """A decimal number in ASCII (`30`, `0.5`, `1e3`); each flag's range check refuses
    what it cannot take (inf, nan, 0)."""
    if not _NUMBER.fullmatch(text):
        raise argparse.ArgumentTypeError(_not_a_number(text, "a number", "30 or 0.5"))
    return float(text)


def _not_a_number(text: str, wants: str, example: str) -> str:
    """ "'1_000' is not a whole number ('_' is not a digit); write …", naming the character that
    looks like part of a number but is not one of 0-9."""
    odd = next((c for c in text if not (c.isascii() and c.isprintable()) or c in "_ "), None)
    why = ""
    if odd == " ":
        why = " (a space is not a digit)"
    elif odd is not None:
        code = "" if odd.isascii() else f" U+{ord(odd):04X}"
        why = f" ('{odd}'{code} is not a digit)"
    return f"'{text}' is not {wants}{why}; write it in the digits 0-9, e.g. {example}"
