"""The HIPE simulator over real HTTP: auth, companies, contacts, custom fields, imports."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from simulators.hipe import HipeSimulator
from simulators.server import RunningSandbox

TOKEN = "sandbox-token"
POLL_LIMIT_S = 60.0


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[HipeSimulator, str]]:
    simulator = HipeSimulator(notify_after_s=None)  # SENT (4) has a test of its own
    with RunningSandbox(simulators={"hipe": simulator}) as running:
        yield simulator, running.endpoints["hipe"].url


@pytest.fixture
def hipe(served: tuple[HipeSimulator, str]) -> Iterator[httpx.Client]:
    """An authenticated client on a freshly reset simulator."""
    simulator, url = served
    with httpx.Client(base_url=url, headers={"X-ACCESS-TOKEN": TOKEN}, timeout=30) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client
    simulator.release_imports()


@pytest.fixture
def simulator(served: tuple[HipeSimulator, str]) -> HipeSimulator:
    return served[0]


def create(hipe: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = hipe.post("/api/companies", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def search(hipe: httpx.Client, condition: str, **params: Any) -> Any:
    response = hipe.get("/api/companies", params={"s": condition, **params})
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(read: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool]) -> Any:
    """Poll until ``done`` (the background import); fails after a generous bound."""
    deadline = time.monotonic() + POLL_LIMIT_S
    while True:
        body = read()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"still waiting: {body}"
        time.sleep(0.02)


# -- auth and errors -----------------------------------------------------------------------


def test_the_access_token_is_required(hipe: httpx.Client) -> None:
    for headers in ({"X-ACCESS-TOKEN": "wrong"}, {"X-ACCESS-TOKEN": ""}):
        answer = hipe.get("/api/companies", headers=headers)
        assert answer.status_code == 401
        assert answer.json() == {"statusCode": 401, "message": "Unauthorized"}
    with httpx.Client(base_url=str(hipe.base_url)) as anonymous:
        for method, path in (
            ("GET", "/api/companies"),
            ("POST", "/api/companies"),
            ("GET", "/api/users/me"),
            ("POST", "/api/imports"),
            ("GET", "/api/custom-field-nodes"),
        ):
            assert anonymous.request(method, path).status_code == 401, path
    assert hipe.get("/api/users/me").json()["email"] == "api@sandbox.hipe.test"


def test_unknown_routes_answer_like_express(hipe: httpx.Client) -> None:
    answer = hipe.put("/api/companies/1", json={})
    assert answer.status_code == 404
    assert answer.json() == {
        "statusCode": 404,
        "message": "Cannot PUT /api/companies/1",
        "error": "Not Found",
    }
    assert hipe.get("/api/nothing").json()["message"] == "Cannot GET /api/nothing"


def test_missing_and_malformed_ids(hipe: httpx.Client) -> None:
    missing = hipe.get("/api/companies/42")
    assert missing.status_code == 404
    assert missing.json() == {
        "statusCode": 404,
        "message": "Company not found",
        "error": "Not Found",
    }
    for method, path in (
        ("PATCH", "/api/companies/42"),
        ("DELETE", "/api/companies/42/archived"),
        ("GET", "/api/companies/42/unarchived"),
    ):
        assert hipe.request(method, path, json={"name": "x"}).status_code == 404, path
    malformed = hipe.get("/api/companies/abc")
    assert malformed.status_code == 400
    assert malformed.json()["message"] == "Invalid param id. Number expected"
    assert hipe.get("/api/users/42").json()["message"] == "User not found"


def test_injected_faults_answer_in_nestjs_shape(hipe: httpx.Client) -> None:
    rule = {"vendor_code": "429", "count": 1, "retry_after_s": 2, "path": "/api/companies"}
    hipe.post("/_sandbox/faults", json=rule).raise_for_status()
    answer = hipe.get("/api/companies")
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "2"
    assert answer.json() == {"statusCode": 429, "message": "Too Many Requests"}
    hipe.post("/_sandbox/faults", json={"statuses": [503], "count": 1}).raise_for_status()
    unavailable = hipe.get("/api/companies")
    assert unavailable.json()["statusCode"] == 503
    assert hipe.get("/api/companies").status_code == 200


# -- companies -----------------------------------------------------------------------------


def test_create_answers_201_with_the_stored_company(hipe: httpx.Client) -> None:
    made = create(hipe, name="My amazing jam company", externalId="ERP-64000", vat="FR12")
    assert isinstance(made["id"], int)
    assert made["name"] == "My amazing jam company"
    assert made["externalId"] == "ERP-64000"
    assert made["archived"] is False
    assert made["customFields"] == {}
    for stamp in (made["createdAt"], made["updatedAt"]):
        assert stamp.endswith("Z")
        assert datetime.fromisoformat(stamp).utcoffset() is not None
    assert hipe.get(f"/api/companies/{made['id']}").json() == made
    assert hipe.get("/_sandbox/records/companies").json() == [made]


def test_create_validates_the_body_like_class_validator(hipe: httpx.Client) -> None:
    def refused(body: Any) -> Any:
        answer = hipe.post("/api/companies", json=body)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"] == "Bad Request"
        return answer.json()["message"]

    assert refused({}) == ["name should not be empty", "name must be a string"]
    assert refused({"name": ""}) == ["name should not be empty"]
    assert refused({"name": 5}) == ["name must be a string"]
    assert refused({"name": "x", "colour": "red"}) == ["property colour should not exist"]
    assert refused({"name": "x", "parentId": "abc"}) == ["parentId must be an integer number"]
    assert refused({"name": "x", "collaboratorIds": [1, "a"]}) == [
        "each value in collaboratorIds must be an integer number"
    ]
    broken = hipe.post(
        "/api/companies", content=b'{"name": }', headers={"Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    assert broken.json()["message"].startswith("Unexpected token in JSON")
    assert hipe.get("/_sandbox/records/companies").json() == []


def test_external_id_is_not_unique(hipe: httpx.Client) -> None:
    """Two creates with one externalId make two companies, as in the real HIPE."""
    first = create(hipe, name="First", externalId="DUP-1")
    second = create(hipe, name="Second", externalId="DUP-1")
    assert first["id"] != second["id"]
    hits = search(hipe, '{"externalId":{"$eq":"DUP-1"}}')
    assert [c["id"] for c in hits] == [first["id"], second["id"]]
    assert len(hipe.get("/_sandbox/records/companies").json()) == 2


def test_patch_updates_and_moves_updated_at(hipe: httpx.Client) -> None:
    parent = create(hipe, name="Parent", externalId="P")
    made = create(hipe, name="Child", externalId="C")
    time.sleep(0.002)  # timestamps have millisecond precision
    patched = hipe.patch(
        f"/api/companies/{made['id']}", json={"parentId": str(parent["id"]), "phone": "+1"}
    )
    assert patched.status_code == 200
    body = patched.json()
    assert (body["parentId"], body["phone"], body["name"]) == (parent["id"], "+1", "Child")
    assert body["createdAt"] == made["createdAt"]
    assert body["updatedAt"] > made["updatedAt"]
    cleared = hipe.patch(f"/api/companies/{made['id']}", json={"phone": None}).json()
    assert cleared["phone"] is None
    assert hipe.patch(f"/api/companies/{made['id']}", json={"name": ""}).status_code == 400


def test_parent_must_exist_and_not_make_a_cycle(hipe: httpx.Client) -> None:
    top = create(hipe, name="Top")
    child = create(hipe, name="Child", parentId=top["id"])
    unknown = hipe.post("/api/companies", json={"name": "Orphan", "parentId": 999})
    assert unknown.status_code == 400
    assert unknown.json()["message"] == "parentId: company 999 not found"
    cycle = hipe.patch(f"/api/companies/{top['id']}", json={"parentId": child["id"]})
    assert cycle.status_code == 400
    assert hipe.get(f"/api/companies/{top['id']}").json()["parentId"] is None


def test_archive_and_unarchive(hipe: httpx.Client) -> None:
    made = create(hipe, name="Soon archived", externalId="ARC-1")
    archived = hipe.delete(f"/api/companies/{made['id']}/archived")
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    assert archived.json()["id"] == made["id"]
    assert hipe.get(f"/api/companies/{made['id']}").json()["archived"] is True
    assert [c["id"] for c in search(hipe, '{"externalId":"ARC-1"}')] == [made["id"]]
    assert [c["id"] for c in search(hipe, '{"archived":true}')] == [made["id"]]
    restored = hipe.get(f"/api/companies/{made['id']}/unarchived")
    assert restored.status_code == 200
    assert restored.json()["archived"] is False
    assert hipe.get("/_sandbox/records/companies").json()[0]["archived"] is False


def test_the_paginated_envelope_rule(hipe: httpx.Client) -> None:
    ids = [create(hipe, name=f"Company {i}")["id"] for i in range(5)]
    assert [c["id"] for c in hipe.get("/api/companies").json()] == ids
    limited = hipe.get("/api/companies", params={"limit": 2}).json()
    assert [c["id"] for c in limited] == ids[:2], "limit alone: a bare array"
    paged = hipe.get("/api/companies", params={"limit": 2, "page": 3}).json()
    assert {k: v for k, v in paged.items() if k != "data"} == {
        "count": 1,
        "total": 5,
        "page": 3,
        "pageCount": 3,
    }
    assert [c["id"] for c in paged["data"]] == ids[4:]
    offset = hipe.get("/api/companies", params={"per_page": 2, "offset": 3}).json()
    assert (offset["page"], [c["id"] for c in offset["data"]]) == (2, ids[3:5])
    page_wins = hipe.get("/api/companies", params={"limit": 2, "page": 1, "offset": 3}).json()
    assert [c["id"] for c in page_wins["data"]] == ids[:2], "page wins over offset"
    no_size = hipe.get("/api/companies", params={"page": 2}).json()
    assert isinstance(no_size, list), "page without a page size: no envelope (no default limit)"
    empty = hipe.get("/api/companies", params={"limit": 2, "page": 1, "s": '{"id":0}'}).json()
    assert empty == {"data": [], "count": 0, "total": 0, "page": 1, "pageCount": 1}


def test_max_limit_caps_pages_and_makes_page_alone_paginate() -> None:
    with (
        RunningSandbox(simulators={"hipe": HipeSimulator(max_limit=2)}) as running,
        httpx.Client(
            base_url=running.endpoints["hipe"].url, headers={"X-ACCESS-TOKEN": TOKEN}
        ) as hipe,
    ):
        for i in range(3):
            create(hipe, name=f"C{i}")
        assert len(hipe.get("/api/companies", params={"limit": 10}).json()) == 2
        page = hipe.get("/api/companies", params={"page": 2}).json()
        assert (page["count"], page["total"], page["pageCount"]) == (1, 3, 2)


def test_changed_since_as_the_conventions_describe(hipe: httpx.Client) -> None:
    first = create(hipe, name="Old")
    second = create(hipe, name="Also old")
    time.sleep(0.002)
    marker = hipe.patch(f"/api/companies/{second['id']}", json={"vat": "X"}).json()["updatedAt"]
    time.sleep(0.002)
    hipe.patch(f"/api/companies/{first['id']}", json={"vat": "Y"})
    params: list[tuple[str, str | int | float | bool | None]] = [
        ("s", f'{{"updatedAt":{{"$gte":"{marker}"}}}}'),
        ("sort", "updatedAt,ASC"),
        ("sort", "id,ASC"),
        ("limit", 10),
        ("page", 1),
    ]
    page = hipe.get("/api/companies", params=params).json()
    assert [c["id"] for c in page["data"]] == [second["id"], first["id"]]


def test_query_strings_are_decoded_like_express(hipe: httpx.Client) -> None:
    made = create(hipe, name="A+B & C 100% «é» 🚀", externalId="Q&A=1;2")
    encoded = search(hipe, '{"name":"A+B & C 100% «é» 🚀"}')
    assert [c["id"] for c in encoded] == [made["id"]]
    by_ext = hipe.get("/api/companies", params={"filter": "externalId||$eq||Q&A=1;2"}).json()
    assert [c["id"] for c in by_ext] == [made["id"]]
    raw_plus = hipe.get('/api/companies?s={"name":{"$starts":"A+B"}}').json()
    assert raw_plus == [], "an unencoded + is a space"


def test_flat_pagination_list_as_the_n8n_node_reads_it(hipe: httpx.Client) -> None:
    for name in ("Bravo", "alpha", "Charlie"):
        create(hipe, name=name, externalId=name.upper())
    page = hipe.get(
        "/api/companies/pagination", params={"page": 1, "limit": 2, "sort": "name,DESC"}
    ).json()
    assert [c["name"] for c in page["data"]] == ["alpha", "Charlie"]
    assert page["pagination"] == {"total": 3, "page": 1, "limit": 2, "pageCount": 2}
    found = hipe.get("/api/companies/pagination", params={"search": "RAV"}).json()
    assert [c["name"] for c in found["data"]] == ["Bravo"]
    assert hipe.get("/api/companies/pagination", params={"sort": "vat,ASC"}).status_code == 400


# -- custom fields -------------------------------------------------------------------------


def test_custom_field_nodes_describe_the_fields(hipe: httpx.Client) -> None:
    nodes = hipe.get("/api/custom-field-nodes").json()
    types = {node["key"]: node["type"] for node in nodes}
    assert {"select", "multiselect", "checkbox", "text", "date"} <= set(types.values())
    for node in nodes:
        assert node["metaEntityContexts"]
        if node["type"] in ("select", "multiselect", "checkbox"):
            assert all({"value", "label"} <= set(option) for option in node["options"])


def test_a_number_custom_field_takes_the_guides_number(hipe: httpx.Client) -> None:
    """The guide's PATCH sets ``"myCustomFieldNumber": 10``; the sandbox's is creditLimit."""
    made = create(hipe, name="Numbers", customFields={"creditLimit": 10})
    assert made["customFields"] == {"creditLimit": 10}
    patched = hipe.patch(
        f"/api/companies/{made['id']}", json={"customFields": {"creditLimit": 2.5}}
    )
    assert patched.json()["customFields"] == {"creditLimit": 2.5}
    csv_text = (
        "externalId,name,customFields.creditLimit\r\nN-1,A,1500\r\nN-2,B,-2.25\r\nN-3,C,x\r\n"
    )
    done = finished(hipe, post_import(hipe, csv_text).json()["id"])
    assert [(e["row"], e["message"]) for e in done["errors"]] == [
        (3, "customFields.creditLimit must be a number")
    ]
    values = {
        c["externalId"]: c["customFields"] for c in hipe.get("/_sandbox/records/companies").json()
    }
    assert (values["N-1"], values["N-2"]) == ({"creditLimit": 1500}, {"creditLimit": -2.25})
    assert type(values["N-1"]["creditLimit"]) is int


def test_company_custom_fields_are_checked_and_merged(hipe: httpx.Client) -> None:
    good = {
        "segment": "retail",
        "sectors": ["food", "pharma"],
        "vip": True,
        "erpNote": "note",
        "customerSince": "2020-05-01",
    }
    made = create(hipe, name="Custom", customFields=good)
    assert made["customFields"] == good

    def refused(fields: dict[str, Any]) -> str:
        answer = hipe.patch(f"/api/companies/{made['id']}", json={"customFields": fields})
        assert answer.status_code == 400, answer.text
        message: list[str] = answer.json()["message"]
        return message[0]

    assert refused({"colour": "red"}) == "customFields.colour is not a custom field of companies"
    assert refused({"segment": "space"}).startswith("customFields.segment must be one of")
    assert refused({"sectors": ["food", "toys"]}).startswith("customFields.sectors must be")
    assert refused({"vip": "yes"}).startswith("customFields.vip must be one of")
    assert refused({"customerSince": "May 2020"}).startswith("customFields.customerSince")
    assert refused({"erpNote": 5}) == "customFields.erpNote must be a string"
    assert refused({"creditLimit": "10"}) == "customFields.creditLimit must be a number"
    assert refused({"creditLimit": True}) == "customFields.creditLimit must be a number"
    assert refused({"preferredLanguage": "fr"}).endswith("not a custom field of companies")

    merged = hipe.patch(
        f"/api/companies/{made['id']}", json={"customFields": {"segment": "industry", "vip": None}}
    ).json()["customFields"]
    assert merged == {
        "segment": "industry",
        "sectors": ["food", "pharma"],
        "erpNote": "note",
        "customerSince": "2020-05-01",
    }


# -- contacts ------------------------------------------------------------------------------


def test_contacts_create_search_update_archive(hipe: httpx.Client) -> None:
    employer = create(hipe, name="Employer")
    made = hipe.post(
        "/api/users/contacts",
        json={
            "email": "zoe@example.com",
            "firstName": "Zoé",
            "externalId": "ERP-12345",
            "collaborationIds": [employer["id"]],
            "customFields": {"preferredLanguage": "fr"},
        },
    )
    assert made.status_code == 201
    contact = made.json()
    assert (contact["role"], contact["collaborationIds"]) == ("contact", [employer["id"]])
    twin = hipe.post("/api/users/contacts", json={"externalId": "ERP-12345"}).json()

    by_ext = hipe.get("/api/users/contacts", params={"s": '{"externalId":{"$eq":"ERP-12345"}}'})
    assert [c["id"] for c in by_ext.json()] == [contact["id"], twin["id"]]
    by_mail = hipe.get("/api/users/contacts", params={"s": '{"email":{"$eq":"zoe@example.com"}}'})
    assert [c["id"] for c in by_mail.json()] == [contact["id"]]
    everyone = hipe.get("/api/users/contacts").json()
    assert {c["role"] for c in everyone} == {"contact"}, "the API user is not a contact"

    assert hipe.get(f"/api/users/{contact['id']}").json() == contact
    patched = hipe.patch(f"/api/users/{contact['id']}", json={"job": "Buyer"}).json()
    assert (patched["job"], patched["email"]) == ("Buyer", "zoe@example.com")
    assert hipe.delete(f"/api/users/{contact['id']}/archived").json()["archived"] is True
    assert hipe.get(f"/api/users/{contact['id']}/unarchived").json()["archived"] is False
    records = hipe.get("/_sandbox/records/contacts").json()
    assert [c["id"] for c in records] == [contact["id"], twin["id"]]


def test_contact_bodies_are_validated(hipe: httpx.Client) -> None:
    def refused(body: Any) -> Any:
        answer = hipe.post("/api/users/contacts", json=body)
        assert answer.status_code == 400, answer.text
        return answer.json()["message"]

    assert refused({"collaborationIds": [77]}) == "collaborationIds: company 77 not found"
    assert refused({"customFields": {"segment": "retail"}}) == [
        "customFields.segment is not a custom field of contacts"
    ]
    assert refused({"email": 3}) == ["email must be a string"]
    assert refused({"role": "admin"}) == ["property role should not exist"]


# -- imports -------------------------------------------------------------------------------


def post_import(hipe: httpx.Client, csv_text: str | bytes, delimiter: str = ",") -> httpx.Response:
    data = csv_text.encode("utf-8") if isinstance(csv_text, str) else csv_text
    return hipe.post(
        "/api/imports",
        data={"type": "16", "delimiter": delimiter},
        files={"csv": ("companies.csv", data, "text/csv")},
    )


def job(hipe: httpx.Client, job_id: str) -> dict[str, Any]:
    answer = hipe.get(f"/api/imports/{job_id}")
    assert answer.status_code == 200
    body: dict[str, Any] = answer.json()
    return body


def finished(hipe: httpx.Client, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = wait_for(lambda: job(hipe, job_id), lambda j: j["status"] in (7, 8))
    return body


def test_import_goes_through_1_2_8_with_row_errors(
    hipe: httpx.Client, simulator: HipeSimulator
) -> None:
    existing = create(hipe, name="Before", externalId="E-0", email="old@x.test")
    create(hipe, name="Twin A", externalId="E-DUP")
    create(hipe, name="Twin B", externalId="E-DUP")
    csv_text = (
        "externalId,name,parentExternalId,email,customFields.segment,customFields.sectors\r\n"
        "E-0,,,,retail,\r\n"  # 1 update: name kept, email emptied
        "E-PARENT,Parent Co,,p@x.test,,food|pharma\r\n"  # 2 create
        "E-CHILD,Child Co,E-PARENT,,,\r\n"  # 3 create under a parent created above
        "E-DUP,Which twin?,,,,\r\n"  # 4 error: two companies
        "E-NEW,,,,,\r\n"  # 5 error: name needed to create
        "E-ORPHAN,Orphan,E-NOWHERE,,,\r\n"  # 6 error: unknown parent
        "E-BAD,Bad,,,space,\r\n"  # 7 error: not an option
        "E-SHORT,Short\r\n"  # 8 error: cell count
        ',"Quoted, with ""comma""",,,,\r\n'  # 9 error: no externalId
        '"E-Q","Line one\nline two; «ü» 🚀",,,,\r\n'  # 10 create
    )
    simulator.hold_imports()
    posted = post_import(hipe, csv_text)
    assert posted.status_code == 201
    body = posted.json()
    assert body["status"] == 1
    assert (body["type"], body["delimiter"]) == ("16", ",")
    assert job(hipe, body["id"])["status"] == 1, "held before it starts"

    simulator.step_import()
    running = wait_for(lambda: job(hipe, body["id"]), lambda j: j["status"] != 1)
    assert running["status"] == 2
    assert running["processed"] == 0

    simulator.release_imports()
    done = finished(hipe, body["id"])
    assert done["status"] == 8
    assert (done["total"], done["processed"], done["created"], done["updated"]) == (10, 10, 3, 1)
    assert [(e["row"], e["externalId"]) for e in done["errors"]] == [
        (4, "E-DUP"),
        (5, "E-NEW"),
        (6, "E-ORPHAN"),
        (7, "E-BAD"),
        (8, "E-SHORT"),
        (9, None),
    ]
    assert "2 companies" in done["errors"][0]["message"]
    assert done["stats"] == {"total": 10, "created": 3, "updated": 1, "errors": 6}

    updated = hipe.get(f"/api/companies/{existing['id']}").json()
    assert (updated["name"], updated["email"]) == ("Before", None)
    assert updated["customFields"] == {"segment": "retail"}
    parent = search(hipe, '{"externalId":"E-PARENT"}')[0]
    child = search(hipe, '{"externalId":"E-CHILD"}')[0]
    assert child["parentId"] == parent["id"]
    assert parent["customFields"] == {"sectors": ["food", "pharma"]}
    assert search(hipe, '{"externalId":"E-Q"}')[0]["name"] == "Line one\nline two; «ü» 🚀"
    assert search(hipe, '{"externalId":"E-NEW"}') == []
    listed = hipe.get("/api/imports").json()
    assert [j["id"] for j in listed] == [body["id"]]
    assert hipe.get("/_sandbox/records/imports").json() == [done]


def test_an_import_ends_sent_once_its_result_is_notified(
    hipe: httpx.Client, simulator: HipeSimulator
) -> None:
    """The guide's 4 SENT: "the import result has been notified by email"."""
    simulator.hold_imports()
    posted = post_import(hipe, "externalId,name\r\nN-1,Notified\r\n").json()
    for _ in range(3):  # 1 -> 2, the rows, 2 -> 8
        simulator.step_import()
    done = wait_for(
        lambda: job(hipe, posted["id"]), lambda j: j["status"] != 1 and j["status"] != 2
    )
    assert (done["status"], done["created"]) == (8, 1)
    simulator.step_import()  # notified
    sent = wait_for(lambda: job(hipe, posted["id"]), lambda j: j["status"] == 4)
    assert {k: v for k, v in sent.items() if k not in ("status", "updatedAt")} == {
        k: v for k, v in done.items() if k not in ("status", "updatedAt")
    }, "the result stays as it was"

    simulator.release_imports()
    simulator.notify_after_s = 0.05
    try:
        again = post_import(hipe, "externalId,name\r\nN-2,Later\r\n").json()
        later = wait_for(lambda: job(hipe, again["id"]), lambda j: j["status"] == 4)
    finally:
        simulator.notify_after_s = None
    assert later["stats"] == {"total": 1, "created": 1, "updated": 0, "errors": 0}


def test_a_cancelled_import_is_aborted_with_the_rows_applied_so_far(
    hipe: httpx.Client, simulator: HipeSimulator
) -> None:
    """The guide's 3 ABORTED: "the import has been cancelled or aborted"."""
    simulator.hold_imports()
    waiting = post_import(hipe, "externalId,name\r\nA-0,Never\r\n").json()
    aborted = hipe.post(f"/_sandbox/imports/{waiting['id']}/abort")
    assert (aborted.status_code, aborted.json()["status"]) == (200, 3)
    simulator.step_import()
    assert job(hipe, waiting["id"])["status"] == 3

    rows = [f"A{i:04d},Company {i}" for i in range(1200)]  # three chunks of 500
    running = post_import(hipe, "externalId,name\r\n" + "\r\n".join(rows) + "\r\n").json()
    simulator.step_import()  # 1 -> 2
    simulator.step_import()  # the first chunk, then held before the second
    wait_for(lambda: job(hipe, running["id"]), lambda j: j["processed"] == 500)
    hipe.post(f"/_sandbox/imports/{running['id']}/abort").raise_for_status()
    simulator.release_imports()
    ended = wait_for(lambda: job(hipe, running["id"]), lambda j: j["status"] == 3)
    applied = len(hipe.get("/_sandbox/records/companies").json())
    assert ended["processed"] == applied == 500, "stopped between chunks; what ran stays"
    assert search(hipe, '{"externalId":"A-0"}') == []
    assert hipe.post("/_sandbox/imports/nope/abort").status_code == 404
    done = finished(hipe, post_import(hipe, "externalId,name\r\nA-9,X\r\n").json()["id"])
    assert hipe.post(f"/_sandbox/imports/{done['id']}/abort").json()["status"] == 8


def test_an_unreadable_file_crashes_with_status_7(hipe: httpx.Client) -> None:
    for content, reason in (
        (b"externalId,name\r\nE-1,\xff\xfe\r\n", "not UTF-8"),
        ("name,email\r\nX,x@y\r\n", "externalId is missing"),
        ("externalId,colour\r\nE-1,red\r\n", "Unknown column"),
        ("", "empty"),
    ):
        posted = post_import(hipe, content)
        assert posted.status_code == 201
        done = finished(hipe, posted.json()["id"])
        assert done["status"] == 7, content
        assert done["errors"][0]["row"] == 0
        assert reason in done["errors"][0]["message"]
    assert hipe.get("/_sandbox/records/companies").json() == []


def test_an_import_cannot_make_a_parent_cycle(hipe: httpx.Client) -> None:
    top = create(hipe, name="Top", externalId="T")
    create(hipe, name="Below", externalId="B", parentId=top["id"])
    posted = post_import(hipe, "externalId,name,parentExternalId\r\nT,,B\r\nT,,T\r\n")
    done = finished(hipe, posted.json()["id"])
    assert [(e["row"], e["externalId"]) for e in done["errors"]] == [(1, "T"), (2, "T")]
    assert hipe.get(f"/api/companies/{top['id']}").json()["parentId"] is None


def test_semicolon_delimiter_and_a_bom(hipe: httpx.Client) -> None:
    posted = post_import(
        hipe, "\ufeffexternalId;name;website\r\nS-1;Semi, colon;https://a.b/?x=1,2\r\n", ";"
    )
    done = finished(hipe, posted.json()["id"])
    assert (done["status"], done["created"]) == (8, 1)
    company = search(hipe, '{"externalId":"S-1"}')[0]
    assert (company["name"], company["website"]) == ("Semi, colon", "https://a.b/?x=1,2")


def test_import_requests_are_validated(hipe: httpx.Client) -> None:
    def refused(data: dict[str, str], with_file: bool = True) -> Any:
        files = {"csv": ("c.csv", b"externalId\r\n", "text/csv")} if with_file else None
        answer = hipe.post("/api/imports", data=data, files=files)
        assert answer.status_code == 400
        return answer.json()["message"]

    assert refused({"type": "3", "delimiter": ","}) == [
        "type must be one of the following values: 16"
    ]
    assert refused({"type": "16", "delimiter": "|"})[0].startswith("delimiter must be")
    assert refused({"type": "16", "delimiter": ","}, with_file=False) == ["csv file is required"]
    garbled = hipe.post(
        "/api/imports",
        content=b"--x\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--x--\r\n",
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert garbled.status_code == 400
    assert garbled.json()["statusCode"] == 400
    assert hipe.get("/api/imports/no-such-import").status_code == 404
    assert hipe.get("/_sandbox/records/imports").json() == []


def test_ten_thousand_rows_import(hipe: httpx.Client) -> None:
    lines = ["externalId,name,email"] + [f"C{i:06d},Company {i},c{i}@x.test" for i in range(10_000)]
    posted = post_import(hipe, "\r\n".join(lines) + "\r\n")
    done = finished(hipe, posted.json()["id"])
    assert (done["status"], done["created"], done["errors"]) == (8, 10_000, [])
    hit = search(hipe, '{"externalId":{"$eq":"C000123"}}')
    assert [c["name"] for c in hit] == ["Company 123"]
    again = finished(hipe, post_import(hipe, "\r\n".join(lines[:101]) + "\r\n").json()["id"])
    assert (again["created"], again["updated"]) == (0, 100), "the same rows update"
    assert len(hipe.get("/_sandbox/records/companies").json()) == 10_000


def test_reset_forgets_everything_and_stops_a_held_import(
    hipe: httpx.Client, simulator: HipeSimulator
) -> None:
    create(hipe, name="Gone soon")
    simulator.hold_imports()
    post_import(hipe, "externalId,name\r\nR-1,Late\r\n")
    hipe.post("/_sandbox/reset").raise_for_status()
    time.sleep(0.2)  # let the released worker reach its next checkpoint
    for entity in ("companies", "contacts", "imports"):
        assert hipe.get(f"/_sandbox/records/{entity}").json() == [], entity
    assert hipe.post("/_sandbox/seed", json={"customers": 5}).json() == {"seeded": {}}
    assert create(hipe, name="First again")["id"] == 1


def test_uuid_ids_serve_companies_users_and_imports_with_uuids() -> None:
    """``HipeSimulator(ids="uuid")``: the guide's shape (``"id": uuid``), in creation order."""
    simulator = HipeSimulator(ids="uuid", notify_after_s=None)
    with (
        RunningSandbox(simulators={"hipe": simulator}) as running,
        httpx.Client(
            base_url=running.endpoints["hipe"].url, headers={"X-ACCESS-TOKEN": TOKEN}, timeout=30
        ) as api,
    ):
        parent = create(api, name="Mère", externalId="P1")
        child = create(api, name="Fille", externalId="C1", parentId=parent["id"])
        assert all(isinstance(c["id"], str) and len(c["id"]) == 36 for c in (parent, child))
        assert parent["id"] < child["id"], "UUIDs in creation order"
        assert api.get(f"/api/companies/{child['id']}").json()["parentId"] == parent["id"]
        bad = api.get("/api/companies/1")
        assert (bad.status_code, bad.json()["message"]) == (
            400,
            "Validation failed (uuid is expected)",
        )
        refused = api.patch(f"/api/companies/{child['id']}", json={"parentId": 1})
        assert refused.json()["message"] == ["parentId must be a UUID"]
        found = search(api, json.dumps({"id": {"$in": [child["id"]]}}))
        assert [c["externalId"] for c in found] == ["C1"]
        me = api.get("/api/users/me").json()
        posted = post_import(api, "externalId,name,parentExternalId\r\nC2,Autre,P1\r\n").json()
        assert posted["createdById"] == me["id"]
        done = wait_for(lambda: job(api, posted["id"]), lambda j: j["status"] == 8)
        assert done["created"] == 1
        [imported] = search(api, '{"externalId":"C2"}')
        assert imported["parentId"] == parent["id"]
        assert len(imported["id"]) == 36
