"""Status symbols as inline SVG: drawn, not typed, so no font can turn them into boxes.

Debian's Chromium with its default fonts has no glyph for ⏱; every status symbol of the
HTML pages is therefore a `<symbol>` of one sprite, placed with `<use href="#s-…">` and
coloured by CSS (`currentColor`). Markdown and terminals keep the text symbols of
`model.STATUS_TEXT`.
"""

from __future__ import annotations

from collections.abc import Mapping

from markupsafe import Markup

_STROKE = 'fill="none" stroke="currentColor" stroke-linecap="round" stroke-linejoin="round"'

#: Name → the inside of a 16×16 symbol. Statuses, plus "flaky" and "nan" (a NaN value).
SHAPES: Mapping[str, str] = {
    "passed": f'<path d="M3 8.5l3.2 3.2L13 4.8" {_STROKE} stroke-width="2.2"/>',
    "regressed": f'<path d="M4 4l8 8M12 4l-8 8" {_STROKE} stroke-width="2.2"/>',
    "untestable": (
        f'<path d="M5.5 6a2.5 2.5 0 1 1 3.6 2.2c-.8.4-1.1.9-1.1 1.8v.4" {_STROKE} '
        'stroke-width="2"/><circle cx="8" cy="13.2" r="1.2" fill="currentColor"/>'
    ),
    "error": (
        f'<path d="M8 2.8v6.8" {_STROKE} stroke-width="2.4"/>'
        '<circle cx="8" cy="13.2" r="1.3" fill="currentColor"/>'
    ),
    "timeout": (
        f'<circle cx="8" cy="8.6" r="5.6" {_STROKE} stroke-width="1.6"/>'
        f'<path d="M8 5.6v3.2l2.2 1.5M6.3 1.6h3.4" {_STROKE} stroke-width="1.6"/>'
    ),
    "not_run": '<rect x="3.5" y="6.9" width="9" height="2.2" rx="1.1" fill="currentColor"/>',
    "none": f'<circle cx="8" cy="8" r="4.2" {_STROKE} stroke-width="1.5" stroke-dasharray="2 2"/>',
    "flaky": f'<path d="M2.5 10l2.7-4.5 2.8 6 2.8-6 2.7 4.5" {_STROKE} stroke-width="1.9"/>',
    "nan": f'<path d="M5 5l6 6M11 5l-6 6" {_STROKE} stroke-width="1.8"/>',
}


#: An invisible frame in every symbol, so each use of one measures its full 16×16 box
#: (a bare dash or dot would measure only its own geometry).
_FRAME = '<rect width="16" height="16" fill="none" stroke="none"/>'


def sprite() -> Markup:
    """The one `<svg>` of symbols a page embeds once (zero size, out of the flow)."""
    symbols = "".join(
        f'<symbol id="s-{name}" viewBox="0 0 16 16">{_FRAME}{shape}</symbol>'
        for name, shape in SHAPES.items()
    )
    return Markup(
        '<svg class="sprite" width="0" height="0" aria-hidden="true" focusable="false">'
        f"{symbols}</svg>"
    )


def icon(name: str, label: str = "") -> Markup:
    """An inline symbol (sized by CSS: `svg.i`); `label` names it for screen readers.

    Kept short: a grid of 100,000 cells has one per cell.
    """
    if name not in SHAPES:
        name = "none"
    aria = f' role="img" aria-label="{Markup.escape(label)}"' if label else ""
    return Markup(f'<svg class="i"{aria}><use href="#s-{name}"/></svg>')
