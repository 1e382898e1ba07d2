"""The HIPE sandbox's CSV imports over real HTTP: statuses 1, 2, 8, row errors, notification,
cancellation, crashes, validation, size, reset and uuid ids."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from simulators.hipe import HipeSimulator
from simulators.server import RunningSandbox
from tests.support.hipe_sandbox import TOKEN, create, finished, job, post_import, search, wait_for


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
