"""Secrets never recorded: credential values, credentials in URLs, credential-named fields.

Three rules, applied where records are made (`records.Result` runs every record through
`current()`), so every output made from records (the store, hence the HTML, Markdown,
JUnit, CSV and Parquet reports, and the progress lines) is clean:

- the value of every environment variable or `--cell-env` variable whose *name* looks like
  a credential (`HF_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `DB_PASSWORD`, ...) is replaced by
  `***` wherever it appears in text: a repro may print its environment;
- `scheme://user:password@host` becomes `scheme://***@host` (a git URL with a token, a
  pip index with a password, in a reason or a pip log tail);
- in provenance, the value under any credential-named key is `***` whatever it is.

The session's secret values are given once, at start (`remember`), not read from
`os.environ` deep inside.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"

#: Words that name a credential on their own.
_SECRET_WORDS = frozenset(
    {
        "TOKEN",
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWORDS",
        "PASSWD",
        "PASSPHRASE",
        "CREDENTIAL",
        "CREDENTIALS",
        "CREDS",
        "COOKIE",
        "COOKIES",
        "SESSIONID",
        "AUTH",
        "OAUTH",
        "AUTHORIZATION",
        "AUTHN",
        "AUTHZ",
        "PRIVATE",
        "APIKEY",
        "ACCESSKEY",
        "SECRETKEY",
        "PRIVATEKEY",
        "JWT",
        "BEARER",
        "DSN",
    }
)
#: Parts of a word that make it a credential (`GHTOKEN`, `DBPASSWORD`, `CLIENTSECRET`);
#: a word must end with TOKEN, so that `TOKENIZERS_PARALLELISM` is not one.
_SECRET_INFIXES = ("PASSWORD", "PASSWD", "SECRET", "CREDENTIAL")
_SECRET_SUFFIXES = ("TOKEN", "APIKEY", "AUTH", "COOKIE")
#: `..._KEY` is a credential unless the word before it says otherwise: REPROMATRIX_KEY is a
#: cell's key (a hash of its inputs), and these are keys of tables, caches and keyboards.
_KEY_WORDS = frozenset({"KEY", "KEYS"})
_HARMLESS_BEFORE_KEY = frozenset(
    {
        "REPROMATRIX",
        "CELL",
        "CACHE",
        "SORT",
        "PRIMARY",
        "FOREIGN",
        "PARTITION",
        "METRIC",
        "HOT",
        "SHORTCUT",
        "LOOKUP",
        "HASH",
        "GROUP",
        "INDEX",
        "ROUTING",
        "SHARD",
    }
)
#: `SESSION_ID/TOKEN/...` are credentials; a name ending in SESSION names a session
#: (NOX_CURRENT_SESSION=matrix, DESKTOP_SESSION=ubuntu), and hiding its value would turn
#: every "matrix" or "ubuntu" of every record into `***`.
_SESSION_SECRETS = frozenset({"ID", "TOKEN", "KEY", "SECRET", "COOKIE", "AUTH"})
_WORDS = re.compile(r"[A-Z0-9]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@functools.lru_cache(maxsize=4096)  # the same few names, in every record
def secret_name(name: str) -> bool:
    """Whether an environment variable (or provenance key) called `name` holds a credential.

    Judged word by word (`_`, `-`, `.` and camelCase separate words), so that
    `HF_TOKEN`, `OPENAI_API_KEY`, `apiKey`, `DB_PASSWORD` and `GITHUB_PAT` are secrets and
    `TOKENIZERS_PARALLELISM`, `GIT_AUTHOR_NAME`, `REPROMATRIX_KEY` and `KEY_METRIC` are not.
    """
    words = _WORDS.findall(_CAMEL.sub("_", name).upper())
    for i, word in enumerate(words):
        if word in _SECRET_WORDS or (word == "PAT" and i == len(words) - 1):
            return True
        if any(part in word for part in _SECRET_INFIXES) or word.endswith(_SECRET_SUFFIXES):
            return True
        if word in _KEY_WORDS and i > 0 and words[i - 1] not in _HARMLESS_BEFORE_KEY:
            return True
        if word == "SESSION" and _session_secret(words, i):
            return True
    return False


def _session_secret(words: list[str], i: int) -> bool:
    if i + 1 < len(words):
        return words[i + 1] in _SESSION_SECRETS
    return len(words) == 1  # SESSION alone: a web session's cookie, as frameworks name it


#: `scheme://userinfo@`: everything between `//` and the last `@` before the host's end.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/@?#\"'<>]*@")


def strip_url_credentials(text: str) -> str:
    """`https://user:token@host/x` → `https://***@host/x` (also a bare `user@`)."""
    if "@" not in text or "://" not in text:
        return text
    return _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)


#: Values shorter than this are not searched for in text: a `SESSION=1` must not turn every
#: "1" of every reason into `***` (the value is still hidden under its own name).
MIN_SECRET_CHARS = 4
_NOT_SECRET_VALUES = frozenset({"true", "false", "none", "null", "yes", "no", "auto", "on", "off"})


class Redactor:
    """Hides the given secret values, URL credentials and credential-named fields."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        usable = {
            v
            for v in values
            if len(v) >= MIN_SECRET_CHARS and v.strip().lower() not in _NOT_SECRET_VALUES
        }
        # Longest first, so that a secret containing another is hidden whole.
        self.values: tuple[str, ...] = tuple(sorted(usable, key=lambda v: (-len(v), v)))

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return strip_url_credentials(text)

    def field(self, key: str, value: Any) -> Any:
        """`value` as kept under `key`: a text under a credential-named key is `***`.
        (Under such a key only text is hidden: `"num_token": 128` is a shape, not a
        secret.) `bounds.bound_tree` asks it of each entry it keeps."""
        return MASK if isinstance(value, str) and value and secret_name(key) else value


def secret_values(*environments: Mapping[str, str]) -> list[str]:
    """The values of the credential-named variables of these environments."""
    return [v for env in environments for k, v in env.items() if secret_name(k) and v]


class _Session:
    """The redactor of this process (one session per process: the CLI's run or bisect)."""

    lock = threading.Lock()
    redactor = Redactor()


def remember(*environments: Mapping[str, str]) -> Redactor:
    """Hide, from now on, the values of these environments' credential-named variables
    (the session's environment and its `--cell-env`), in every record made here."""
    with _Session.lock:
        values = [*_Session.redactor.values, *secret_values(*environments)]
        _Session.redactor = Redactor(values)
        return _Session.redactor


def forget() -> None:
    """Back to hiding URL credentials and credential-named fields only (tests)."""
    with _Session.lock:
        _Session.redactor = Redactor()


def current() -> Redactor:
    """The redactor of this session (URL credentials and named fields only, until
    `remember` is given secrets)."""
    return _Session.redactor
