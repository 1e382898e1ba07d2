"""``erpsync doctor`` against a server whose certificate fails TLS verification.

It says TLS verification of that host failed: neither "unreachable" (the host answered)
nor "bad credentials" (no credential was ever sent).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_diagnose import run_cli, write_config
from tests.security.test_secrets import https_server, self_signed

TOKEN = "tok-doctor-tls-123456"
# The HTTPS server with a certificate no trust store knows, shared with the security tests.
__all__ = ["https_server", "self_signed"]


def test_doctor_says_tls_verification_of_the_host_failed(
    https_server: str, tmp_path: Path, redis_url: str
) -> None:
    systems = {"hipe": {"base_url": https_server, "access_token": TOKEN}}
    config = write_config(tmp_path / "c.toml", systems, redis_url)
    result = run_cli("doctor", "--json", config=config)
    assert result.returncode == 1, result.stdout + result.stderr
    rows = {r["system"]: r for r in json.loads(result.stdout)["checks"]}
    hipe = rows["hipe"]
    assert hipe["ok"] is False
    assert "TLS verification of 127.0.0.1 failed" in hipe["detail"], hipe
    assert "self-signed certificate" in hipe["detail"], hipe
    assert TOKEN not in result.stdout + result.stderr
