"""The console's users, password hashes, signed sessions and CSRF tokens.

Passwords are hashed with scrypt (:func:`hashlib.scrypt`, the standard library's memory-hard
KDF): ``scrypt:<n>:<r>:<p>:<salt b64>:<hash b64>`` (no ``$``: it passes shells, .env files
and compose files as it is). A session is a cookie signed with HMAC
SHA-256 holding the user's name, role, expiry and the session's CSRF token; every form
carries that token and every POST is refused without it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from erpsync.settings import ConsoleSettings, is_loopback_host

Role = Literal["viewer", "operator"]
COOKIE = "erpsync_console"
#: scrypt's cost: 2**14 blocks of 8 x 128 bytes (16 MiB), one lane
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """The stored form of a password (a new random salt each time)."""
    if not password:
        raise ValueError("the password is empty")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    return f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}:{_b64(salt)}:{_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` result (False when malformed)."""
    try:
        scheme, n, r, p, salt, digest = stored.split(":")
        if scheme != "scrypt":
            return False
        found = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(_unb64(digest)),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, _unb64(digest))


class StartRefusedError(Exception):
    """The console must not start this way (a public address without authentication)."""


def check_start(address: str, settings: ConsoleSettings) -> None:
    """Loopback may run without login; any other address needs users configured."""
    if settings.users or is_loopback_host(address):
        return
    raise StartRefusedError(
        f"refusing to listen on {address} without authentication: configure "
        "console.users (ERPSYNC_CONSOLE__USERS__<USER>__PASSWORD_HASH and __ROLE; "
        "`erpsync console hash-password` makes a hash), or listen on 127.0.0.1"
    )


@dataclass(frozen=True)
class Session:
    """Who is using the console, and the token their forms carry."""

    user: str
    role: Role
    csrf: str
    expires: float

    @property
    def operator(self) -> bool:
        return self.role == "operator"


class Sessions:
    """Signs and checks session cookies."""

    def __init__(self, secret: bytes, hours: float) -> None:
        self._secret = secret
        self.hours = hours

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())

    def issue(self, user: str, role: Role) -> tuple[Session, str]:
        """A new session and its cookie value."""
        session = Session(user, role, secrets.token_urlsafe(24), time.time() + self.hours * 3600)
        body = _b64(
            json.dumps(
                {"u": session.user, "r": session.role, "c": session.csrf, "e": session.expires}
            ).encode()
        )
        return session, f"{body}.{self._sign(body)}"

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie carries, or None (absent, forged, expired)."""
        if not cookie or "." not in cookie:
            return None
        body, signature = cookie.rsplit(".", 1)
        if not hmac.compare_digest(signature, self._sign(body)):
            return None
        try:
            data = json.loads(_unb64(body))
            session = Session(str(data["u"]), data["r"], str(data["c"]), float(data["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires < time.time() or session.role not in ("viewer", "operator"):
            return None
        return session


def check_login(settings: ConsoleSettings, user: str, password: str) -> Role | None:
    """The user's role when the password is right, else None (same work either way)."""
    found = settings.users.get(user)
    stored = found.password_hash.get_secret_value() if found else _DUMMY
    ok = verify_password(password, stored)
    return found.role if ok and found is not None else None


#: checked against when the user is unknown, so that a wrong name takes as long
_DUMMY = hash_password("not a password", salt=b"0" * 16)
