"""What pip's own log (`--log FILE`, always at debug level) says about the sources it read.

`pip index versions` prints only the versions it kept. Why it kept no others is said in
its debug log alone: a page it could not fetch (an expired token's 401/403, a refused
connection: "Could not fetch URL …"), and each file it skipped ("Skipping link: yanked
for reason: …", "none of the wheel's tags (…) are compatible", "… Requires-Python …").
Its normal output reads the same for "this index refused me" and "this index has no such
project" ("No matching distribution found"), so the log is the one place that tells them
apart. The lines are pip's debug messages (pip 21 to 26 word them alike); a line in
another wording is simply not understood, which leaves the listing as it was before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from repromatrix.redact import strip_url_credentials

_FETCH = re.compile(r"Could not fetch URL (\S+): (.*?)(?: for url: \S+)?(?: - skipping)?\s*$")
#: An index's "no such project" page: an answer, not a source that could not be read.
_ABSENT = ("404 ", "410 ")


@dataclass(frozen=True, kw_only=True)
class IndexLog:
    """What pip's log says beyond the versions it printed."""

    #: "URL: reason" for each page pip could not read (the listing may miss releases).
    unreadable: tuple[str, ...] = ()


def read_index_log(text: str) -> IndexLog:
    """The pages pip could not read, from its log."""
    unreadable: dict[str, None] = {}
    for line in text.splitlines():
        fetch = _FETCH.search(line)
        if fetch is not None and not fetch.group(2).strip().startswith(_ABSENT):
            url, reason = (strip_url_credentials(g.strip()) for g in fetch.groups())
            unreadable[f"{url}: {reason}"] = None
    return IndexLog(unreadable=tuple(unreadable))


__all__ = ["IndexLog", "read_index_log"]
