"""The console's security rules without a browser: hashes, sessions, start, roles, CSRF."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from cli.console.auth import (
    Sessions,
    StartRefusedError,
    check_login,
    check_start,
    hash_password,
    verify_password,
)
from erpsync.settings import ConsoleSettings, ConsoleUser


def settings(**users: str) -> ConsoleSettings:
    return ConsoleSettings(
        users={
            name: ConsoleUser(password_hash=SecretStr(hash_password(pw)), role=role)  # type: ignore[arg-type]
            for name, (pw, role) in ((n, v.split(":")) for n, v in users.items())
        }
    )


def test_a_hash_verifies_its_password_only_and_never_holds_it() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt:16384:8:1:")
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct hors", stored)
    assert hash_password("correct horse") != stored, "a new salt each time"
    assert not verify_password("x", "md5:abc"), "an unknown scheme is refused"
    assert not verify_password("x", "garbage")
    with pytest.raises(ValueError, match="empty"):
        hash_password("")


def test_login_gives_the_role_of_a_known_user_with_the_right_password() -> None:
    console = settings(alice="pw-alice:operator", victor="pw-victor:viewer")
    assert check_login(console, "alice", "pw-alice") == "operator"
    assert check_login(console, "victor", "pw-victor") == "viewer"
    assert check_login(console, "alice", "pw-victor") is None
    assert check_login(console, "mallory", "pw-alice") is None


def test_a_public_address_needs_users_loopback_does_not() -> None:
    check_start("127.0.0.1", ConsoleSettings())
    check_start("::1", ConsoleSettings())
    with pytest.raises(StartRefusedError, match="without authentication"):
        check_start("0.0.0.0", ConsoleSettings())  # noqa: S104
    check_start("0.0.0.0", settings(alice="pw:operator"))  # noqa: S104


def test_sessions_are_signed_and_expire() -> None:
    sessions = Sessions(b"k" * 32, hours=1)
    session, cookie = sessions.issue("alice", "operator")
    assert sessions.read(cookie) == session
    body, signature = cookie.rsplit(".", 1)
    forged_body = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    assert sessions.read(f"{forged_body}.{signature}") is None
    assert Sessions(b"j" * 32, hours=1).read(cookie) is None, "another secret"
    assert sessions.read(None) is None
    assert sessions.read("no-dot") is None
    expired = Sessions(b"k" * 32, hours=-1 / 3600)
    _, old = expired.issue("alice", "operator")
    assert sessions.read(old) is None
    assert session.expires > time.time()
