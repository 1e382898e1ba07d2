"""ERP contacts become canonical people whose parent is their customer (their employer)."""

from __future__ import annotations

import json

import httpx
from pydantic import SecretStr

from adapters.onlineerp import OnlineErpClient
from erpsync.models import Person
from erpsync.settings import OnlineErpSettings
from producers.base import SourceRecord
from producers.onlineerp_contacts import OnlineErpContacts

CONTACTS = [
    {
        "NoContact": "C1-P1", "NoClient": "C1", "Prenom": " Marie ", "Nom": "Tremblay",
        "Courriel": "marie@exemple.qc.ca", "Telephone": "  ", "Cellulaire": "+1 438 555 0101",
        "Titre": "Comptable", "EstActif": False, "Autre": 1,
    },
    {"NoContact": "C2-P1", "NoClient": "C2", "Nom": "Roy"},
    {"NoContact": "C3-P1", "Nom": "Sans client"},  # no NoClient: invalid, still followed
]  # fmt: skip


def read(page_size: int = 2) -> list[SourceRecord]:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/Entity/Customer":
            assert request.url.params["$select"] == "NoClient,NomClient"
            customers = [{"NoClient": "C1", "NomClient": " Un inc. "}, {"NoClient": "C2"}]
            return httpx.Response(
                200,
                content=json.dumps(
                    customers
                    if "$skip" in request.url.params and request.url.params["$skip"] == "0"
                    else []
                ),
            )
        assert request.url.path == "/api/Entity/Contact"
        skip, top = int(request.url.params["$skip"]), int(request.url.params["$top"])
        return httpx.Response(200, content=json.dumps(CONTACTS[skip : skip + top]))

    settings = OnlineErpSettings(
        base_url="https://erp.example/api", licence_code="LIC", secret=SecretStr("s3cr3t-abc")
    )
    with httpx.Client(base_url=settings.base_url, transport=httpx.MockTransport(handle)) as http:
        stream = OnlineErpContacts(
            "contacts", "onlineerp", "person", ["hipe"],
            client=OnlineErpClient(http, settings), page_size=page_size,
        )  # fmt: skip
        return [record for page in stream.pages() for record in page]


def test_each_contact_is_a_canonical_person_whose_parent_is_its_customer() -> None:
    records = read()
    assert records[0] == SourceRecord(
        "C1-P1",
        {
            "key": "C1-P1",
            "employer_key": "C1",
            "employer_name": "Un inc.",
            "first_name": "Marie",
            "last_name": "Tremblay",
            "email": "marie@exemple.qc.ca",
            "phone": None,  # blank in the ERP: cleared in the targets
            "mobile": "+1 438 555 0101",
            "job_title": "Comptable",
            "active": False,
        },
        "C1",
    )
    assert Person.model_validate(records[0].payload).employer_key == "C1"
    assert records[1] == SourceRecord(
        "C2-P1",
        {"key": "C2-P1", "employer_key": "C2", "employer_name": None, "first_name": None,
         "last_name": "Roy", "email": None, "phone": None, "mobile": None, "job_title": None,
         "active": True},
        "C2",
    )  # fmt: skip


def test_a_contact_without_its_customer_is_mapped_as_it_is_for_the_targets_to_refuse() -> None:
    invalid = read()[2]
    assert (invalid.key, invalid.parent_key) == ("C3-P1", None)
    assert invalid.payload["employer_key"] is None
    assert invalid.payload["last_name"] == "Sans client"
