"""Text from outside (repro output, matrix values, stored records) made safe to show.

Terminals run escape sequences (ANSI colours, OSC 8 links, OSC 52 clipboard writes, window
titles), so text a repro wrote must never reach one as it is; error messages must stay one
short line however long the value they quote. Pure functions, no imports of ours.
"""

from __future__ import annotations

import re

#: ESC-introduced sequences: CSI (`ESC [ ... final`), OSC/DCS/APC/PM/SOS strings (ended by
#: BEL or ESC \), and two-character escapes. C1 controls (U+0080-U+009F) are the 8-bit forms
#: of the same introducers (U+009B is CSI) and are removed with the other controls.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI
    r"|\x1b[\]PX^_][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # other escapes (ESC c, ESC ( B, ...), or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
    r"|[\x9d\x90\x98\x9e\x9f][^\x07\x1b\x9c]*(?:\x07|\x9c)?"  # 8-bit OSC, DCS, ...
)
#: Controls other than tab and newline, DEL, C1 controls, lone surrogates, and the
#: bidirectional overrides that make a terminal show text in another order than it is.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
#: ASCII bytes that need no work: printable ones, and tab and newline in multi-line text.
_PRINTABLE = bytes(range(0x20, 0x7F))
_KEEP = {False: _PRINTABLE, True: _PRINTABLE + b"\t\n"}
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _unicode_printable(match: re.Match[str]) -> str:
    # Format characters (zero-width, bidi), unassigned code points, separators: "?".
    return "".join(c if c.isprintable() else "?" for c in match.group())


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` without escape sequences, with other control characters (and whatever else
    `str.isprintable` refuses) shown as `?`.

    Tabs stay; newlines stay only when `newlines` is true (multi-line output tails),
    otherwise every run of whitespace becomes one space. Linear in the text's length:
    callers cut long texts first.
    """
    if text.isascii() and not text.encode().translate(None, _KEEP[newlines]):
        return text  # nearly always: nothing to do (bytes.translate: 20x a regex search)
    text = _ESCAPES.sub("", text)
    if not newlines:
        text = _SPACES.sub(" ", text)
    text = _CONTROLS.sub("?", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text if text.isascii() else _NON_ASCII.sub(_unicode_printable, text)


def cut(text: str, limit: int, *, marker: str = "…") -> str:
    """At most `limit` characters: the head and the tail, joined by `marker`."""
    if len(text) <= limit:
        return text
    keep = max(0, limit - len(marker))
    head = (keep * 2) // 3
    return text[:head] + marker + text[len(text) - (keep - head) :]


def one_line(text: str, limit: int) -> str:
    """One printable line of at most `limit` characters (both ends kept)."""
    if len(text) > 4 * limit:  # cut first: the rest is linear in what is left
        text = text[: 2 * limit] + " " + text[-2 * limit :]
    return cut(printable(text).strip(), limit)


def excerpt(value: object, limit: int = 40) -> str:
    """A value quoted in an error message: printable, one line, at most `limit` characters.

    Huge integers are not converted to text in full (CPython refuses beyond 4,300 digits,
    and nobody reads them): they are shown by their digit count.
    """
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return f"<an integer of about {value.bit_length() * 3 // 10 + 1} digits>"
    if isinstance(value, str):
        text = value
    elif isinstance(value, bytes):
        text = f"<{len(value)} bytes>"
    elif isinstance(value, dict):
        text = f"<a mapping of {len(value)} keys>"
    elif isinstance(value, list | tuple):
        text = f"<a list of {len(value)} items>"
    else:
        text = repr(value)
    # Visible, not collapsed: "py3\n" must show why the value is refused.
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    # So must a space at either end, which `one_line` strips: "GPU type 'cpu' is not
    # declared; did you mean 'cpu'?" named no difference; 'cpu ' shows it.
    lead = " " if text[:1].isspace() and text.strip() else ""
    trail = " " if text[-1:].isspace() and text.strip() else ""
    return lead + one_line(text, max(1, limit - len(lead) - len(trail))) + trail


def quoted(value: object, limit: int = 40) -> str:
    """`excerpt`, with text in single quotes as `repr` would show it (`'fine'`, `7`)."""
    return f"'{excerpt(value, limit)}'" if isinstance(value, str) else excerpt(value, limit)


#: What starts a line of pip's that says why it failed (pip ≥ 24 writes `error:` in lower
#: case for build failures), and a Python exception quoted from a build's own output.
_PIP_ERROR = re.compile(r"^(?:ERROR|error):\s*\S")
_EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w.]*)?(?:Error|Exception|Exit)\b[^:]*:\s*\S.*$")
#: The box-drawing pip frames a subprocess's output with.
_FRAME = "│╰─>×║ \t"


def _last_said(lines: list[str]) -> list[str]:
    """The last line a failed build printed inside pip's frame ("[3 lines of output]" …
    "[end of output]"), for a build that said why without an exception's name (`raise
    SystemExit("needs CUDA")` prints only its message)."""
    said: list[str] = []
    inside = False
    for ln in lines:
        if _OUTPUT_START.match(ln):
            inside, said = True, []
        elif ln == "[end of output]":
            inside = False
        elif inside:
            said.append(ln)
    return said[-1:]


_OUTPUT_START = re.compile(r"^\[\d+ lines? of output\]$")


def pip_failure(output: str, *, code: int) -> str:
    """The reason pip failed, from its output: its last `ERROR:`/`error:` line, with the
    last exception a build printed (`RuntimeError: this sdist cannot build`) when there
    is one; else its last line; else its exit status."""
    lines = [ln.strip().lstrip(_FRAME).strip() for ln in output.splitlines()]
    lines = [ln for ln in lines if ln]
    errors = [ln for ln in lines if _PIP_ERROR.match(ln)]
    raised = [ln for ln in lines if _EXCEPTION.match(ln)] or _last_said(lines)
    why = errors[-1] if errors else (lines[-1] if lines else f"exit {code}")
    if raised and raised[-1] not in why:
        why += f" ({raised[-1]})"
    return one_line(why, 400)
