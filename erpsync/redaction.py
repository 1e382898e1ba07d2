"""Keep secrets out of everything erpsync writes: logs, dead letters, exceptions, output.

Two nets, used together: the exact values of every configured secret (registered once at
start-up by the settings), and patterns for credentials that travel in bodies and headers
(bearer tokens, Basic auth, ``access_token`` / ``client_secret`` / ``password`` fields).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

REDACTED = "***"

_lock = threading.Lock()
_known_secrets: set[str] = set()
#: the same, longest first (a secret containing another goes first); replaced, never mutated
_by_length: tuple[str, ...] = ()

# (pattern, replacement): group 1 is the part kept in front of the secret.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization: Bearer xxx / Basic xxx (headers, or echoed in text)
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"), rf"\1 {REDACTED}"),
    # "access_token": "xxx", "client_secret":"xxx", "password": "xxx" (JSON)
    (
        re.compile(
            r'(?i)("(?:access_token|refresh_token|client_secret|secret|password|token|'
            r'x-access-token|clesecrete|authorization)"\s*:\s*)"[^"]*"'
        ),
        rf'\1"{REDACTED}"',
    ),
    # access_token=xxx&client_secret=yyy (form or query)
    (
        re.compile(
            r"(?i)\b((?:access_token|refresh_token|client_secret|password|token|secret)=)[^&\s\"']+"
        ),
        rf"\1{REDACTED}",
    ),
    # X-ACCESS-TOKEN: xxx (header dumps)
    (re.compile(r"(?i)\b(x-access-token:\s*)\S+"), rf"\1{REDACTED}"),
)

# Every pattern above matches only text holding one of these words, in any case: ASCII text
# without them is left alone without running the patterns (most text is: a log line's values,
# a vendor's message; the patterns cost tens of microseconds a line, the words one or two).
# A pattern added above must add its word here (tests/erpsync/test_logging.py checks both).
_WORDS = ("bearer", "basic", "token", "secret", "password", "clesecrete", "authorization")


def register_secrets(values: Iterable[str | None]) -> None:
    """Remember secret values so that :func:`redact` removes them wherever they appear."""
    global _by_length
    with _lock:
        for value in values:
            if value and len(value) >= 4:
                _known_secrets.add(value)
        _by_length = tuple(sorted(_known_secrets, key=len, reverse=True))


def known_secrets() -> frozenset[str]:
    """The secret values registered so far (for tests that scan output)."""
    with _lock:
        return frozenset(_known_secrets)


def may_hold_secrets(text: str) -> bool:
    """False when :func:`redact` would leave ``text`` as it is (no known secret, no pattern).

    Screening several values joined by a non-word character, such as ``"\\x00"``, answers
    for each of them: what is found in a value is found in the join.
    """
    return any(secret in text for secret in _by_length) or _may_match(text)


def _may_match(text: str) -> bool:
    """False when no pattern can match ``text``."""
    if not text.isascii():  # case-insensitive matching knows letters that .lower() does not
        return True
    lowered = text.lower()
    return any(word in lowered for word in _WORDS)


def redact(
    text: str, *, extra_secrets: Iterable[str | None] = (), max_chars: int | None = None
) -> str:
    """Return ``text`` with every known secret and credential pattern replaced by ``***``.

    ``max_chars`` truncates the result (after redaction, so a secret cut in half cannot leak).
    """
    secrets = _by_length
    extra = {s for s in extra_secrets if s and len(s) >= 4}
    if extra:
        secrets = tuple(sorted(extra.union(secrets), key=len, reverse=True))
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _may_match(text):
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + "…"
    return text
