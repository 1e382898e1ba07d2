"""The Propeller sandbox's OAuth2 tokens: client credentials by form or basic auth, refusals
without echoing the secret, expiry."""

from __future__ import annotations

import httpx

from simulators.propeller import TOKEN_TTL_S, PropellerSimulator
from tests.support import Clock
from tests.support.propeller_sandbox import CREDENTIALS, assert_error, records


def test_token_by_form_body(anon: httpx.Client) -> None:
    answer = anon.post("/oauth2/token", data=CREDENTIALS)
    assert answer.status_code == 200
    body = answer.json()
    assert body["expires_in"] == 1800
    assert (body["token_type"], body["scope"]) == ("Bearer", "profile")
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) >= 32


def test_token_by_basic_auth(anon: httpx.Client) -> None:
    answer = anon.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("sandbox", "sandbox-secret"),
    )
    assert answer.status_code == 200
    token = answer.json()["access_token"]
    assert (
        anon.get("/v2/companies/id/1", headers={"Authorization": f"Bearer {token}"}).status_code
        == 404
    ), "the token opens the API (the company just does not exist)"


def test_wrong_credentials_are_401_invalid_client_without_echoing_the_secret(
    anon: httpx.Client,
) -> None:
    wrong = anon.post("/oauth2/token", data={**CREDENTIALS, "client_secret": "nope-secret"})
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert "nope-secret" not in wrong.text
    basic = anon.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("sandbox", "bad")
    )
    assert basic.status_code == 401
    assert basic.headers["WWW-Authenticate"].startswith("Basic")
    garbage = anon.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!not-base64"},
    )
    assert garbage.status_code == 401


def test_token_request_needs_the_client_credentials_grant(anon: httpx.Client) -> None:
    missing = anon.post("/oauth2/token", data={"client_id": "sandbox"})
    assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
    other = anon.post("/oauth2/token", data={**CREDENTIALS, "grant_type": "password"})
    assert (other.status_code, other.json()["error"]) == (400, "unsupported_grant_type")


def test_resources_need_a_known_bearer_token(anon: httpx.Client) -> None:
    assert_error(anon.get("/v2/companies/id/1"), 401, 401, "InvalidAccessToken")
    unknown = anon.get("/v2/companies/id/1", headers={"Authorization": "Bearer made-up"})
    assert_error(unknown, 401, 401, "InvalidAccessToken")
    basic = anon.post("/v2/companies", json={}, auth=("sandbox", "sandbox-secret"))
    assert_error(basic, 401, 401, "InvalidAccessToken")
    assert records(anon, "companies") == [], "a refused request changes nothing"


def test_token_expires_after_1800_seconds(api: httpx.Client, clock: Clock) -> None:
    clock.advance(TOKEN_TTL_S - 1)
    assert api.post("/v2/companies", json={"name": "still valid"}).status_code == 201
    clock.advance(1)
    messages = assert_error(api.get("/v2/companies/id/9000"), 401, 401, "InvalidAccessToken")
    assert "expired" in messages[0]
    fresh = api.post("/oauth2/token", data=CREDENTIALS).json()["access_token"]
    assert (
        api.get("/v2/companies/id/9000", headers={"Authorization": f"Bearer {fresh}"}).status_code
        == 200
    )


def test_expire_tokens_lets_tests_force_a_refresh(
    api: httpx.Client, simulator: PropellerSimulator
) -> None:
    assert api.post("/v2/companies", json={"name": "x"}).status_code == 201
    simulator.expire_tokens()
    assert_error(api.get("/v2/companies/id/9000"), 401, 401, "InvalidAccessToken")
