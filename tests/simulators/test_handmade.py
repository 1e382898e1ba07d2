"""Issue 19, point 4: hand-made companies in Propeller, HIPE and Atollon, over real HTTP."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from simulators import seed
from simulators.handmade import HandmadeRequest, generate
from simulators.server import RunningSandbox

REQUEST = {"customers": 150, "random_seed": 7, "matches": 30, "ambiguous": 6}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with RunningSandbox() as running:
        yield running


def test_every_target_holds_the_same_handmade_companies_without_our_ids(
    sandbox: RunningSandbox,
) -> None:
    made = generate(HandmadeRequest(**REQUEST))
    urls = {name: ep.url + "/_sandbox" for name, ep in sandbox.endpoints.items()}
    answers = {
        t: httpx.post(urls[t] + "/handmade", json=REQUEST) for t in ("propeller", "hipe", "atollon")
    }
    for target, answer in answers.items():
        assert answer.status_code == 200, (target, answer.text)
        assert answer.json() == {"loaded": len(made), "manifest": [m.as_dict() for m in made]}

    companies = httpx.get(urls["propeller"] + "/records/companies").json()
    assert [(c["name"], c["email"], c["taxNumber"], c["sources"]) for c in companies] == [
        (m.name, m.email, m.tax_number, []) for m in made
    ]
    hipe = httpx.get(urls["hipe"] + "/records/companies").json()
    assert [(c["name"], c["email"], c["vat"], c["externalId"]) for c in hipe] == [
        (m.name, m.email, m.tax_number, None) for m in made
    ]
    contacts = httpx.get(urls["atollon"] + "/records/contacts").json()
    assert len(contacts) == len(made)  # twins by name stay two contacts
    for contact, m in zip(contacts, made, strict=True):
        assert contact["company"]["companyName"] == m.name.strip()  # Atollon trims text
        assert contact["externalId"] == []
        assert contact.get("vatNo") == m.tax_number
        emails = [e["contact"] for e in contact["contacts"].get("email", [])]
        assert emails == ([m.email] if m.email else [])
    assert httpx.post(urls["onlineerp"] + "/handmade", json=REQUEST).status_code == 404


def test_each_record_matches_what_its_manifest_says() -> None:
    made = generate(HandmadeRequest(**REQUEST))
    customers = {c["NoClient"]: c for c in seed.generate(150, 0, 0, 7).customers}
    assert Counter(m.kind for m in made) == {
        "tax_number": 10, "email": 10, "name": 10, "two_targets": 6, "two_sources": 3,
    }  # fmt: skip
    for m in made:
        first = customers[m.keys[0]]
        if m.kind in ("tax_number", "two_targets", "two_sources"):
            assert m.tax_number is not None
            assert m.tax_number.replace(" ", "").upper() == first["NoTPS"]
        if m.kind == "email":
            assert m.email is not None
            assert m.email.casefold() == first["Courriel"]
        if m.kind == "two_sources":
            assert m.email == customers[m.keys[1]]["Courriel"]
        if m.kind == "name":
            assert (m.email, m.tax_number) == (None, None)
            assert m.name != first["NomClient"]
    # the same request, the same records; another seed, other ones
    assert generate(HandmadeRequest(**REQUEST)) == made
    assert generate(HandmadeRequest(**{**REQUEST, "random_seed": 8})) != made


def test_a_request_the_seed_cannot_satisfy_is_refused(sandbox: RunningSandbox) -> None:
    url = sandbox.endpoints["hipe"].url + "/_sandbox/handmade"
    answer = httpx.post(url, json={"customers": 10, "matches": 300})
    assert answer.status_code == 400
    assert "seed more customers" in answer.json()["error"]
    assert httpx.post(url, json={"matches": -1}).status_code == 400
    assert httpx.post(url, json={"unknown": 1}).status_code == 400
