"""Result JSON texts for property tests, ordinary and hostile: the protocol's keys with
right and wrong values, keys given twice or missing, numbers at every parser's edges
(30 digits, 4,300, signed zeros, NaN, past a float's range), lone surrogates, text that
is no UTF-8, nesting past pydantic's 200 levels and Python's 1,000."""

from __future__ import annotations

import json

from hypothesis import strategies as st

#: Number texts: exact and not, signed zeros, past a float's range, at the 30-digit edge
#: where `parse_json` turns to floats, past pydantic's 4,300 digits, and what is no JSON.
NUMBERS = [
    *("0", "-0", "-0.0", "1", "1.0", "1.5e3", "1E-400", "1e400", "-1e400", "NaN", "Infinity"),
    *("-Infinity", "-NaN", "01", "1.", ".5", "+1", "2147483648", "9007199254740993"),
    *("9" * 29, "-" + "9" * 29, "9" * 30, "-" + "9" * 30, "1" + "0" * 40, "7" * 400),
    *("1" * 4301, "0." + "3" * 40, "1.00000000000000011102230246251565404236316680908203125"),
]
#: String texts, raw: lone surrogates (both halves, escaped either case), a pair, a
#: control character, bytes that are no UTF-8, escapes, a statuses' near miss.
STRINGS = [
    *(r'"\ud800"', r'"\uDC00x"', r'"\ud83d\ude00"', r'"\udbff\u0041"', '"a\x01b"', '"a\x7fb"'),
    *('"caf\xc3\xa9"', '"\xff"', '"\xed\xa0\x80"', r'"\u0000"', r'"\/\"\\"', r'"\x"'),
    *('"passed"', '"Passed"', '"passed\\n"', '"regressed"', '"error"', '"ok"', '""', '" "'),
    '"https://user:t0ps3cret@example.com/r.git"',
]
KEYS = [
    *("schema", "schema_version", "status", "reason", "metrics", "thresholds", "provenance"),
    *("repro", "fingerprint", "metric", "", " ", "a", "max_abs", "b.rel_err"),
]
FIELDS = ["schema", "status", "reason", "metrics", "thresholds", "provenance", "repro"]


def _float_text(sign: str, whole: int, frac: str, exp: str) -> str:
    return f"{sign}{whole}{'.' + frac if frac else ''}{exp}"


SCALARS = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    st.sampled_from(NUMBERS),
    st.sampled_from(STRINGS),
    st.integers(-(10**31), 10**31).map(str),
    st.floats(allow_nan=False).map(json.dumps),
    st.builds(
        _float_text,
        st.sampled_from(["", "-"]),
        st.integers(0, 10**20),
        st.text("0123456789", max_size=25),
        st.sampled_from(["", "e5", "E-30", "e+308", "e-324", "e309"]),
    ),
    st.text(max_size=12).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.text(max_size=12).map(json.dumps),
)


def object_text(pairs: list[tuple[str, str]], spaced: bool) -> str:
    sep, colon = (", ", " : ") if spaced else (",", ":")
    return "{" + sep.join(json.dumps(k) + colon + v for k, v in pairs) + "}"


def deep(levels: int, inner: str) -> str:
    return '{"a":' * levels + inner + "}" * levels


VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda vs: "[" + ",".join(vs) + "]"),
        st.builds(
            object_text,
            st.lists(st.tuples(st.sampled_from(KEYS), inner), max_size=4),
            st.booleans(),
        ),
        # Past pydantic's 200 levels, and past Python's parser's ~1,000.
        st.builds(deep, st.sampled_from([199, 201, 250, 1200]), inner),
    ),
    max_leaves=12,
)


TEXTS = st.one_of(
    st.sampled_from(STRINGS),
    st.text(max_size=12).map(lambda t: json.dumps(t, ensure_ascii=False)),
    st.text(max_size=12).map(json.dumps),
)
NUMBER_OBJECTS = st.builds(
    object_text, st.lists(st.tuples(st.sampled_from(KEYS), SCALARS), max_size=5), st.booleans()
)
#: What each key of the protocol holds in a valid result JSON (its values, valid or not).
RIGHT = {
    "schema": st.just("1"),
    "status": st.sampled_from(['"passed"', '"regressed"', '"untestable"', '"error"']),
    "reason": TEXTS,
    "repro": TEXTS,
    "metrics": NUMBER_OBJECTS,
    "thresholds": NUMBER_OBJECTS,
    "provenance": st.builds(
        object_text, st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=4), st.booleans()
    ),
}
WRONG = {"schema": st.sampled_from(["1.0", "true", "2", '"1"', "9" * 40, "null"])}


@st.composite
def result_jsons(draw: st.DrawFn) -> bytes:
    """A result JSON: mostly the protocol's keys, each a right value or now and then a
    wrong one, keys given twice or missing, other keys, and now and then no object."""
    if draw(st.integers(0, 19)) == 0:
        return draw(VALUES).encode("utf-8", "surrogatepass")
    pairs = []
    for field in FIELDS:
        chance = draw(st.integers(0, 15))
        if chance == 0:
            continue  # missing
        wrong = WRONG.get(field, VALUES)
        pairs.append((field, draw(RIGHT[field] if chance > 1 else wrong)))
    if draw(st.integers(0, 3)) == 0:
        pairs += draw(st.lists(st.tuples(st.sampled_from(KEYS), VALUES), max_size=3))
    pairs = draw(st.permutations(pairs))
    text = object_text(pairs, draw(st.booleans()))
    return (draw(st.sampled_from(["", " ", "\n\t"])) + text).encode("utf-8", "surrogatepass")
