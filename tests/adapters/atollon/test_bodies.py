"""The Atollon adapter's contact and product bodies: the documented JSON sent, absences sent
in the form of their field, answers and dates read (httpx.MockTransport)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal

import pytest

from adapters.atollon import (
    AtollonAddress,
    AtollonCompany,
    AtollonCompanyPersonRelation,
    AtollonCompanyRelation,
    AtollonContactGroup,
    AtollonContactInfo,
    AtollonContactInput,
    AtollonContacts,
    AtollonPerson,
    AtollonProductInput,
    ExternalId,
    parse_datetime,
)
from tests.support.atollon_api import CONTACT_OK, make_client, reply


def test_contact_body_is_the_documented_json_without_unset_fields() -> None:
    client, recorder = make_client(reply(200, CONTACT_OK))
    contact = AtollonContactInput(
        company=AtollonCompany(
            company_name='Dupont & Fils "Émballages" 100% +',
            company_company_relation=[
                AtollonCompanyRelation.to_parent("onlineerp", "C000001", "Mother company")
            ],
        ),
        address=[AtollonAddress(street="1 rue Principale", city="Montréal", zip="H2X 1Y4")],
        contacts=AtollonContacts(email=[AtollonContactInfo(contact="a@exemple.qc.ca")]),
        contact_group=[AtollonContactGroup(name="Inactive")],
        external_id=[ExternalId(system="onlineerp", id="C000002")],
        vat_no="123456789RT0001",
    )

    result = client.upsert_contact(contact)

    assert json.loads(recorder.last.content) == {
        "company": {
            "companyName": 'Dupont & Fils "Émballages" 100% +',
            "companyCompanyRelation": [
                {
                    "companyExternalId": [{"system": "onlineerp", "id": "C000001"}],
                    "relationType": "Mother company",
                }
            ],
        },
        "address": [{"street": "1 rue Principale", "city": "Montréal", "zip": "H2X 1Y4"}],
        "contacts": {"email": [{"contact": "a@exemple.qc.ca"}]},
        "contactGroup": [{"name": "Inactive"}],
        "externalId": [{"system": "onlineerp", "id": "C000002"}],
        "vatNo": "123456789RT0001",
    }
    assert result.contact_id == "555001"
    assert result.folder_id == "777"
    assert result.external_id_for("onlineerp") == "C000002"
    assert result.external_id_for("hipe") is None


def test_person_contact_body_names_the_employer_by_external_id() -> None:
    client, recorder = make_client(reply(200, {"result": "SUCCESS", "contactId": "9"}))
    person = AtollonContactInput(
        person=AtollonPerson(
            first_name="Jean",
            last_name="Tremblay",
            company_person_relation=[
                AtollonCompanyPersonRelation(
                    company_external_id=[ExternalId(system="onlineerp", id="C000001")],
                    position_desc="Comptable",
                )
            ],
        ),
        external_id=[ExternalId(system="onlineerp", id="P-1")],
    )

    result = client.upsert_contact(person)

    sent = json.loads(recorder.last.content)
    assert sent["person"] == {
        "firstName": "Jean",
        "lastName": "Tremblay",
        "companyPersonRelation": [
            {
                "companyExternalId": [{"system": "onlineerp", "id": "C000001"}],
                "positionDesc": "Comptable",
            }
        ],
    }
    assert result.contact_id == "9"
    assert result.folder_id is None


def test_a_contact_needs_a_company_or_a_surname() -> None:
    with pytest.raises(ValueError, match="company name or a person's last name"):
        AtollonContactInput(
            person=AtollonPerson(first_name="Jean"),
            external_id=[ExternalId(system="onlineerp", id="P-1")],
        )


def test_product_body_and_answer() -> None:
    answer = {
        "result": "SUCCESS",
        "productId": 4242,
        "productName": "Boîte carton",
        "productRefid": "P00001",
        "product": {"externalId": [{"system": "onlineerp", "id": "P00001"}]},
    }
    client, recorder = make_client(reply(200, answer))
    product = AtollonProductInput(
        name="Boîte carton",
        ref_id="P00001",
        type_name="Product",
        unit_price=Decimal("4990.50"),
        unit_price_currency_name="CAD",
        status_name="Active",
        opening_balance_date=datetime(2022, 9, 9, 10, 10),
        external_id=[ExternalId(system="onlineerp", id="P00001")],
    )

    result = client.upsert_product(product)

    assert json.loads(recorder.last.content) == {
        "name": "Boîte carton",
        "refId": "P00001",
        "typeName": "Product",
        "unitPrice": 4990.5,
        "unitPriceCurrencyName": "CAD",
        "statusName": "Active",
        "openingBalanceDate": "2022-09-09T10:10",
        "externalId": [{"system": "onlineerp", "id": "P00001"}],
    }
    assert result.product_id == "4242"
    assert result.product_refid == "P00001"
    assert result.external_id_for("onlineerp") == "P00001"


def test_dates_in_every_documented_form_are_read() -> None:
    assert parse_datetime("2022-09-14T10:00") == datetime(2022, 9, 14, 10, 0)
    assert parse_datetime("2023-01-25T12:47:34.678428") == datetime(2023, 1, 25, 12, 47, 34, 678428)
    assert parse_datetime("2024-04-26") == datetime(2024, 4, 26)
    assert parse_datetime("26.04.2024") == datetime(2024, 4, 26)
    assert parse_datetime("<2022-09-14T10:00>") is None
    assert parse_datetime("") is None
    assert parse_datetime(None) is None


def test_a_stated_contact_sends_each_absence_in_the_form_of_its_field() -> None:
    """A removed value must reach Atollon: an empty list, "" for a text (conventions)."""
    client, recorder = make_client(reply(200, CONTACT_OK))
    contact = AtollonContactInput(
        company=AtollonCompany(company_name="Dupont", company_company_relation=[]),
        address=[],
        contacts=AtollonContacts(email=[], phone=[]),
        external_id=[ExternalId(system="onlineerp", id="C000002")],
        vat_no="",
    )

    client.upsert_contact(contact)

    assert json.loads(recorder.last.content) == {
        "company": {"companyName": "Dupont", "companyCompanyRelation": []},
        "address": [],
        "contacts": {"email": [], "phone": []},
        "externalId": [{"system": "onlineerp", "id": "C000002"}],
        "vatNo": "",
    }


def test_a_product_sent_without_a_price_empties_it_with_null() -> None:
    client, recorder = make_client(reply(200, {"result": "SUCCESS", "productId": "1"}))
    client.upsert_product(
        AtollonProductInput(name="Ruban", unit_price=None, unit_price_currency_name="")
    )
    assert json.loads(recorder.last.content) == {
        "name": "Ruban",
        "unitPrice": None,
        "unitPriceCurrencyName": "",
    }
    client.upsert_product(AtollonProductInput(name="Ruban"))
    assert json.loads(recorder.last.content) == {"name": "Ruban"}, "unset: left out"
