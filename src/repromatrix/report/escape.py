"""Data into HTML (and Markdown) without letting it become markup, links or code.

Text goes through jinja2's autoescaping; the per-cell details travel in one inert
`<script type="application/json">` element, written by `script_json`; only plain http(s)
links become hrefs (`safe_url`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from markupsafe import Markup

from repromatrix.report.metrics import fmt_num
from repromatrix.safetext import printable

#: `json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)`, with the
#: encoder made once rather than per call (100,000 cells).
_encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode


def safe_url(url: str | None) -> str | None:
    """Only plain http(s) links become hrefs (never `javascript:` or `data:`)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:  # e.g. an unclosed "[" in the host
        return None
    if parts.scheme in ("http", "https") and parts.netloc:
        return url.strip()
    return None


def script_json(value: Any) -> Markup:
    """JSON for a `<script type="application/json">` element.

    This is the one place that marks data as safe, because it escapes it itself: with
    `<`, `>` and `&` written as JSON unicode escapes, the text cannot contain `</script`,
    `<!--` or any tag, and JSON.parse reads the same strings back.
    """
    return Markup(script_json_text(value))


def script_json_text(value: Any) -> str:
    """`script_json` as plain text, for a caller that joins many before marking them."""
    try:
        text = _encode(value)
    except (ValueError, TypeError):
        # Rare: NaN/inf or odd types somewhere (provenance): clean the whole value once.
        text = json.dumps(_finite(value), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    # ensure_ascii already wrote U+2028/U+2029 (and all non-ASCII) as escapes, and keeps
    # the text one byte per character, which matters for a 100,000-cell blob.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings (provenance may hold any float)."""
    if isinstance(value, float) and not math.isfinite(value):
        return fmt_num(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Markdown(str):
    """Markdown of our own (`**all**`), put in a table as it is."""


#: Characters that start Markdown of their own: code, emphasis, links and images, strike.
_MARKUP = re.compile(r"[\\`*\[\]~|]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


#: What GitHub turns into a ping or a link to an issue of the repository the text is
#: pasted in: `@user` and `@org/team` after a non-word character, `#123` and `GH-123`.
_PINGS = re.compile(r"(?<![0-9A-Za-z_])(?:@(?=[0-9A-Za-z])|GH-(?=[0-9]))|#(?=[0-9])", re.I)


def md_cell(text: str) -> str:
    """Text safe inside a Markdown table cell (or a line): one line, shown as written.
    Pipes, backticks, emphasis, link and image brackets and strikes are escaped (a
    revision named `![x](https://host/t.png)` would be an image in a PR comment), `_`
    only where it could emphasise (not inside `fla_fused_chunk`), and raw HTML is
    entities. Mentions and issue references get a zero-width space (`&#8203;`) after
    their `@`, `#` or `GH-`, as Renovate writes them into PRs: a commit subject "Fix
    (#1234) by @someone" in a bisect's table, pasted into a PR comment, pinged that user
    and linked (and notified) that issue of the PR's repository; it reads the same."""
    if isinstance(text, Markdown):
        return text
    text = printable(str(text))  # one line; controls, bidi and zero-width marks as "?"
    text = _MARKUP.sub(lambda m: "\\" + m.group(0), text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # After the entities: `&` of its own zero-width space stays as written.
    return _PINGS.sub(r"\g<0>&#8203;", text)
