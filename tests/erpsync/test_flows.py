"""Issue 15, point 3: a flow or mapping erpsync would not honour is refused at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from erpsync.errors import ConfigError
from erpsync.flows import TARGETS, effective_mapping, markdown
from erpsync.mapping import TargetMapping
from erpsync.settings import load_settings

SYSTEMS: dict[str, Any] = {
    "onlineerp": {"base_url": "http://127.0.0.1:1", "licence_code": "L", "secret": "s3"},
    "propeller": {"base_url": "http://127.0.0.1:1", "client_id": "c", "client_secret": "s1"},
    "hipe": {"base_url": "http://127.0.0.1:1", "access_token": "t"},
    "atollon": {"base_url": "http://127.0.0.1:1", "instance": "i"},
}
PAIRS = (
    "customer -> propeller/hipe/atollon, product -> atollon, person -> hipe/atollon, "
    "billing -> onlineerp, invoice -> atollon"
)
SOURCES = (
    "customer <- onlineerp/propeller, product <- onlineerp, billing <- atollon, "
    "invoice <- onlineerp, person <- onlineerp"
)


def problems(**flows: dict[str, Any]) -> list[str]:
    """Every problem the settings list for these flows (none: an empty list)."""
    try:
        load_settings(systems=SYSTEMS, flows=flows)
    except ConfigError as error:
        return list(error.problems)
    return []


def test_the_supported_flows_pass() -> None:
    assert (
        problems(
            customers={
                "source": "onlineerp",
                "entity": "customer",
                "targets": ["propeller", "hipe", "atollon"],
                "source_fields": {
                    "shop_email": "CourrielBoutique",
                    "vat": "NoTVQ",
                    "web": "SiteWeb",
                    "segment": "Secteur",
                },
                "mapping": {
                    "propeller": {
                        "fields": {"email": "custom.shop_email", "debtor_id": "custom.vat"}
                    },
                    "hipe": {
                        "fields": {"vat": "custom.vat", "website": "custom.web"},
                        "custom_fields": {"erpSegment": "custom.segment"},
                    },
                },
            },
            shop={"source": "propeller", "entity": "customer", "targets": ["hipe", "atollon"]},
            products={"source": "onlineerp", "entity": "product", "targets": ["atollon"]},
            billing={
                "source": "atollon",
                "entity": "billing",
                "targets": ["onlineerp"],
                "mapping": {
                    "onlineerp": {
                        "fields": {"activity_status": "Invoiced", "project_status": "Billed"},
                        "custom_fields": {
                            "Devise": "currency",
                            "LigneFacture.TauxTaxe": "vat_rate",
                        },
                    }
                },
            },
        )
        == []
    )


def test_a_pair_no_sink_supports_is_refused_with_the_supported_pairs() -> None:
    found = problems(
        products={"source": "onlineerp", "entity": "product", "targets": ["propeller", "atollon"]},
        invoices={"source": "atollon", "entity": "billing", "targets": ["hipe"]},
    )
    assert found == [
        f"flows.products.targets: no sink writes product to 'propeller' (supported pairs: {PAIRS})",
        f"flows.invoices.targets: no sink writes billing to 'hipe' (supported pairs: {PAIRS})",
    ]


def test_a_disabled_flow_is_refused_too() -> None:
    found = problems(
        later={
            "enabled": False,
            "source": "onlineerp",
            "entity": "product",
            "targets": ["hipe"],
        }
    )
    assert found == [
        f"flows.later.targets: no sink writes product to 'hipe' (supported pairs: {PAIRS})"
    ]


def test_a_source_no_producer_reads_is_refused_and_so_is_writing_back_to_the_source() -> None:
    found = problems(
        hipe_out={"source": "hipe", "entity": "customer", "targets": ["atollon"]},
        loop={"source": "propeller", "entity": "customer", "targets": ["propeller", "hipe"]},
    )
    assert found == [
        f"flows.hipe_out.source: erpsync reads no customer from 'hipe' "
        f"(supported sources: {SOURCES})",
        "flows.loop.targets: 'propeller' is the flow's source: a flow cannot write back to it",
    ]


def test_a_mapping_key_the_target_would_ignore_is_an_error_naming_flow_target_and_key() -> None:
    found = problems(
        customers={
            "source": "onlineerp",
            "entity": "customer",
            "targets": ["propeller", "hipe", "atollon"],
            "mapping": {
                "propeller": {
                    "custom_fields": {"segment": "custom.segment"},
                    "fields": {"budget": "key", "notes": "custom.segment"},
                },
                "atollon": {"fields": {"name": "custom.short_name"}},
                "hipe": {"fields": {"parentId": "parent_key", "vat": "vat_number"}},
            },
        },
        products={
            "source": "onlineerp",
            "entity": "product",
            "targets": ["atollon"],
            "mapping": {"atollon": {"custom_fields": {"Colour": "custom.colour"}}},
        },
    )
    assert found == [
        "flows.customers.mapping.propeller.custom_fields: propeller takes no custom fields for "
        "customer (erpsync would ignore them: propeller honours only fields)",
        "flows.customers.mapping.propeller.fields.budget: propeller has no customer field "
        "'budget' a mapping can set (one of: name, tax_number, email, phone, coc_number, "
        "debtor_id, department, office, notes)",
        "flows.customers.mapping.propeller.fields.notes: 'custom.segment' is never filled: "
        "the flow's source_fields has no 'segment'",
        "flows.customers.mapping.atollon.fields.name: atollon takes no field mapping for "
        "customer (erpsync would ignore it: atollon honours no mapping key)",
        "flows.customers.mapping.hipe.fields.parentId: hipe has no customer field 'parentId' "
        "a mapping can set (one of: name, email, phone, vat, website)",
        "flows.customers.mapping.hipe.fields.vat: 'vat_number' is not a field of customer "
        "(fields: active, address, custom, email, key, language, name, parent_key, phone, "
        "tax_number, custom.<name>)",
        "flows.products.mapping.atollon.custom_fields: atollon takes no custom fields for "
        "product (erpsync would ignore them: atollon honours only fields)",
    ]


def test_billing_mapping_paths_are_checked_against_the_invoice_and_its_lines() -> None:
    found = problems(
        billing={
            "source": "atollon",
            "entity": "billing",
            "targets": ["onlineerp"],
            "mapping": {
                "onlineerp": {
                    "fields": {"activity_status": " ", "invoice_status": "Paid"},
                    "custom_fields": {"Devise": "money", "LigneFacture.TauxTaxe": "vat"},
                }
            },
        }
    )
    assert found == [
        "flows.billing.mapping.onlineerp.custom_fields.Devise: 'money' is not a field of an "
        "invoice (fields: activity_id, billing_item_ids, currency, customer_key, date, "
        "description, lines, project_id, reference)",
        "flows.billing.mapping.onlineerp.custom_fields.LigneFacture.TauxTaxe: 'vat' is not a "
        "field of an invoice line (fields: description, product_key, quantity, "
        "source_item_id, unit_price, vat_rate)",
        "flows.billing.mapping.onlineerp.fields.activity_status: names Atollon status set on "
        "the activity once invoiced: not empty",
        "flows.billing.mapping.onlineerp.fields.invoice_status: onlineerp has no billing "
        "field 'invoice_status' a mapping can set (one of: activity_status, project_status, "
        "time_sheets)",
    ]


def test_time_sheets_and_invoice_states_are_options_with_their_own_rules() -> None:
    found = problems(
        billing={
            "source": "atollon",
            "entity": "billing",
            "targets": ["onlineerp"],
            "mapping": {"onlineerp": {"fields": {"time_sheets": "merged"}}},
        },
        invoices={
            "source": "onlineerp",
            "entity": "invoice",
            "targets": ["atollon"],
            "mapping": {"atollon": {"fields": {"paid": "Paid", "refunded": "Paid"}}},
        },
    )
    assert found == [
        "flows.billing.mapping.onlineerp.fields.time_sheets: 'merged' is not one of "
        "together, apart",
        "flows.invoices.mapping.atollon.fields.refunded: atollon has no invoice field "
        "'refunded' a mapping can set (one of: open, partly_paid, paid, cancelled)",
    ]
    assert (
        problems(
            billing={
                "source": "atollon",
                "entity": "billing",
                "targets": ["onlineerp"],
                "mapping": {"onlineerp": {"fields": {"time_sheets": "apart"}}},
            },
            invoices={"source": "onlineerp", "entity": "invoice", "targets": ["atollon"]},
        )
        == []
    )


def test_problems_of_flows_are_listed_with_those_of_other_settings() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            systems=SYSTEMS,
            worker={"concurrency": 0},
            flows={"p": {"source": "onlineerp", "entity": "product", "targets": ["propeller"]}},
        )
    assert caught.value.problems == [
        "worker.concurrency: Input should be greater than or equal to 1",
        f"flows.p.targets: no sink writes product to 'propeller' (supported pairs: {PAIRS})",
    ]


def test_the_effective_mapping_of_a_flow_follows_its_overrides_and_custom_fields() -> None:
    routes = effective_mapping(
        "onlineerp",
        "customer",
        "hipe",
        TargetMapping(
            fields={"email": "custom.billing_email"},
            custom_fields={"erpSegment": "custom.segment"},
        ),
        {"billing_email": "CourrielFacturation", "segment": "Secteur"},
    )
    assert [r.as_dict() for r in routes] == [
        {"source": "NoClient", "canonical": "key", "target": "externalId", "origin": "default"},
        {"source": "NomClient", "canonical": "name", "target": "name", "origin": "default"},
        {
            "source": "CourrielFacturation",
            "canonical": "custom.billing_email",
            "target": "email",
            "origin": "fields",
        },
        {"source": "Telephone", "canonical": "phone", "target": "phone", "origin": "default"},
        {"source": "NoTPS", "canonical": "tax_number", "target": "vat", "origin": "default"},
        {
            "source": "NoClientParent",
            "canonical": "parent_key",
            "target": "parentId",
            "origin": "default",
        },
        {
            "source": "EstActif",
            "canonical": "active",
            "target": "archived (DELETE / PATCH …/archived)",
            "origin": "default",
        },
        *(
            {
                "source": source,
                "canonical": f"addresses[].{field}",
                "target": target,
                "origin": "default",
            }
            for field, target, source in HIPE_ADDRESS_ROUTES
        ),
        {
            "source": "Secteur",
            "canonical": "custom.segment",
            "target": "customFields.erpSegment",
            "origin": "custom_fields",
        },
    ]


def test_every_override_name_is_unique_per_target() -> None:
    for pair, spec in TARGETS.items():
        names = [f.override for f in spec.fields if f.override is not None]
        names += list(spec.extra_fields) + list(spec.options)
        assert len(names) == len(set(names)), pair


def test_source_fields_a_stream_would_ignore_are_refused() -> None:
    found = problems(
        shop={
            "source": "propeller",
            "entity": "customer",
            "targets": ["hipe"],
            "source_fields": {"segment": "segment"},
        },
        billing={
            "source": "atollon",
            "entity": "billing",
            "targets": ["onlineerp"],
            "source_fields": {"po": "purchaseOrder"},
        },
    )
    readers = "customer from onlineerp, product from onlineerp"
    assert found == [
        "flows.shop.source_fields: erpsync reads no extra fields of customer from 'propeller' "
        f"(it would ignore them: source_fields are read for {readers})",
        "flows.billing.source_fields: erpsync reads no extra fields of billing from 'atollon' "
        f"(it would ignore them: source_fields are read for {readers})",
    ]


def test_a_custom_path_no_source_field_fills_is_refused() -> None:
    found = problems(
        customers={
            "source": "onlineerp",
            "entity": "customer",
            "targets": ["hipe"],
            "source_fields": {"segment": "Secteur"},
            "mapping": {
                "hipe": {
                    "fields": {"website": "custom.web"},
                    "custom_fields": {"erpSegment": "custom.segment", "erpNote": "custom.note"},
                }
            },
        },
        shop={
            "source": "propeller",
            "entity": "customer",
            "targets": ["hipe"],
            "mapping": {"hipe": {"custom_fields": {"erpNote": "custom.note"}}},
        },
    )
    assert found == [
        "flows.customers.mapping.hipe.custom_fields.erpNote: 'custom.note' is never filled: "
        "the flow's source_fields has no 'note'",
        "flows.customers.mapping.hipe.fields.website: 'custom.web' is never filled: "
        "the flow's source_fields has no 'web'",
        "flows.shop.mapping.hipe.custom_fields.erpNote: 'custom.note' is never filled: "
        "the flow's source_fields has no 'note'",
    ]


def test_the_effective_mapping_of_a_propeller_flow_shows_its_keys_namespace() -> None:
    routes = effective_mapping("propeller", "customer", "hipe", TargetMapping(), {})
    assert [(r.source, r.canonical, r.target) for r in routes] == [
        ("id (as propeller:<id>)", "key", "externalId"),
        ("name", "name", "name"),
        ("email", "email", "email"),
        ("phone", "phone", "phone"),
        ("taxNumber", "tax_number", "vat"),
        ("parent.id (as propeller:<parent.id>)", "parent_key", "parentId"),
        (None, "active", "archived (DELETE / PATCH …/archived)"),
        *((None, f"addresses[].{field}", target) for field, target, _ in HIPE_ADDRESS_ROUTES),
    ]


#: a customer's addresses at HIPE: canonical field, HIPE field, the ERP's fields
HIPE_ADDRESS_ROUTES = [
    ("code", "addresses[].name", "invoice (Adresse), delivery:<AdressesLivraison[].CodeAdresse>"),
    ("line1", "addresses[].address", "Adresse.Ligne1, AdressesLivraison[].Ligne1"),
    ("city", "addresses[].city", "Adresse.Ville, AdressesLivraison[].Ville"),
    ("region", "addresses[].state", "Adresse.Province, AdressesLivraison[].Province"),
    ("postal_code", "addresses[].zipCode", "Adresse.CodePostal, AdressesLivraison[].CodePostal"),
    ("country", "addresses[].country", "Adresse.Pays, AdressesLivraison[].Pays"),
]


def test_readme_flows_table_is_the_generated_one() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    start, end = "<!-- flows:start -->\n", "<!-- flows:end -->"
    documented = readme.split(start, 1)[1].split(end, 1)[0]
    assert documented == markdown(), "run: erpsync settings --flows, paste into README"
    assert (
        "| `customer` | `onlineerp`, `propeller` | `propeller`, `hipe`, `atollon` |" in documented
    )
