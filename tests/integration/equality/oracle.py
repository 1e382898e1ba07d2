"""What each target must show for an ERP customer, written from the vendors' documentation.

This is the test's own reading of the docs (``../shared/vendor-docs``, ``VENDORS.md``) and of
``docs/sandbox-conventions.md``, on purpose independent of erpsync's sinks
(``delivery/sinks/*``) and of ``delivery/sinks/view.py``: computing the expectation with the
product's mapping code would mirror a misreading on both sides, so a sink that drops a
field would agree with itself. The records are read as the sandbox stores them
(``GET /_sandbox/records/<entity>``), in each vendor's own field names.

For every target the oracle builds two dicts with the same keys, one from the ERP customer
(``expected_*``), one from the target's record (``observed_*``), and compares them field by
field. Text is compared stripped, blank as absent (the ERP holds what users typed; a value
erased to spaces is an erased value). A customer deleted in the ERP is expected to show its
last values, marked inactive where the target has a lifecycle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

#: Propeller ``source`` of erpsync's ``sourceId`` (PropellerSettings.source's default)
PROPELLER_SOURCE = "ERPSYNC"
#: Propeller ``language`` of erpsync's companies (PropellerSettings.language's default): part
#: of the ``sourceId`` lookup key, so one language for every company, not the customer's
PROPELLER_LANGUAGE = "EN"
#: the Propeller company attribute that marks an inactive customer, ``Y`` or ``N``
#: (PropellerSettings.inactive_attribute's default; docs/sandbox-conventions.md)
PROPELLER_INACTIVE = "ERPSYNC_INACTIVE"
#: Atollon externalId ``system`` of ERP keys (AtollonSettings.erp_system's default)
ERP_SYSTEM = "onlineerp"
#: the crawler doc's ``companyCompanyRelation.relationType`` ("<Relation type Mother company>")
PARENT_RELATION = "Mother company"
#: the Atollon contact group of a deactivated customer (docs/sandbox-conventions.md)
INACTIVE_GROUP = "Inactive"

#: ERP customer fields (OnlineERP ``Customer``) the oracle reads
ERP_ADDRESS = ("Ligne1", "Ville", "Province", "CodePostal", "Pays")


def text(value: Any) -> str | None:
    """A text value as compared: stripped, blank or absent as None."""
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


@dataclass(frozen=True)
class FlowMapping:
    """The parts of the customers flow's configuration that decide what targets show."""

    #: HIPE ``customFields`` key -> the ERP customer field it comes from
    hipe_custom: Mapping[str, str] = field(default_factory=dict)
    #: Propeller company field -> the ERP customer field it comes from (``mapping.fields``)
    propeller_fields: Mapping[str, str] = field(default_factory=dict)
    #: Atollon records a deactivation (``contactGroup`` ``Inactive``); off by default,
    #: since the crawler documents no way to leave a group (issue 15, point 2)
    atollon_deactivates: bool = False


@dataclass(frozen=True)
class SourceState:
    """An ERP customer as the producer last saw it; ``exists`` False once deleted."""

    key: str
    record: Mapping[str, Any]
    exists: bool = True

    @property
    def active(self) -> bool:
        return self.exists and bool(self.record.get("EstActif", True))

    def value(self, erp_field: str) -> str | None:
        return text(self.record.get(erp_field))

    def address(self) -> tuple[str | None, ...]:
        raw = self.record.get("Adresse") or {}
        return tuple(text(raw.get(name)) for name in ERP_ADDRESS)


@dataclass
class Report:
    """Differences between the ERP and one target; ``equal`` when there are none."""

    target: str
    checked: int = 0
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    different: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not (self.missing or self.duplicates or self.unexpected or self.different)

    def fields_differing(self) -> dict[str, int]:
        """How many records differ in each field."""
        counts: dict[str, int] = defaultdict(int)
        for fields in self.different.values():
            for name in fields:
                counts[name] += 1
        return dict(sorted(counts.items()))

    def __str__(self) -> str:
        if self.equal:
            return f"{self.target}: {self.checked} records equal"
        lines = [
            f"{self.target}: {self.checked} checked, {len(self.missing)} missing "
            f"{self.missing[:5]}, {len(self.duplicates)} duplicated {self.duplicates[:5]}, "
            f"{len(self.unexpected)} unexpected {self.unexpected[:5]}, "
            f"{len(self.different)} different; by field: {self.fields_differing()}"
        ]
        for key, fields in sorted(self.different.items())[:8]:
            shown = ", ".join(f"{n}: expected {e!r}, found {o!r}" for n, (e, o) in fields.items())
            lines.append(f"  {key}: {shown}")
        return "\n".join(lines)


def compare(
    target: str,
    expected: Mapping[str, dict[str, Any]],
    observed: Iterable[tuple[str, dict[str, Any]]],
) -> Report:
    """Every expected record against the target's records (several with one key: duplicates;
    a key the source never had: unexpected)."""
    report = Report(target)
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, fields in observed:
        found[key].append(fields)
    report.unexpected = sorted(set(found) - set(expected))
    for key, want in sorted(expected.items()):
        report.checked += 1
        records = found.get(key, [])
        if not records:
            report.missing.append(key)
            continue
        if len(records) > 1:
            report.duplicates.append(key)
        got = records[0]
        diff = {
            name: (value, got.get(name)) for name, value in want.items() if got.get(name) != value
        }
        if diff:
            report.different[key] = diff
    return report


# -- Propeller ---------------------------------------------------------------------------
# Company fields (rest-v2/companies): name, language, parent ({id} or {sourceId, source}),
# taxNumber, phone, email, notes, ...; lookup key sourceId + source + language. A DELETE
# sends a company to the recycle bin, restorable only in the backoffice: a deactivation is a
# reversible representation instead (issue 15, point 2), and nothing lands in the bin unless
# an operator configures it.


def expected_propeller(state: SourceState, mapping: FlowMapping) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "name": state.value("NomClient"),
        "taxNumber": state.value("NoTPS"),
        "email": state.value("Courriel"),
        "phone": state.value("Telephone"),
        "parent": state.value("NoClientParent"),
        "language": PROPELLER_LANGUAGE,
        "active": state.active,
        "recycleBin": False,
    }
    for name, erp_field in mapping.propeller_fields.items():
        fields[name] = state.value(erp_field)
    return fields


def propeller_active(company: Mapping[str, Any]) -> bool:
    """The company's lifecycle as Propeller shows it: not in the recycle bin, and its
    inactive marker (a text company attribute, ``Y`` inactive) not set."""
    if company.get("recycleBin"):
        return False
    for attribute in company.get("attributes") or []:
        if isinstance(attribute, Mapping) and attribute.get("name") == PROPELLER_INACTIVE:
            return text(attribute.get("value")) != "Y"
    return True


def _propeller_key(company: Mapping[str, Any]) -> str | None:
    for source in company.get("sources") or []:
        if source.get("source") == PROPELLER_SOURCE and source.get("sourceId") is not None:
            return str(source["sourceId"])
    return None


def observed_propeller(
    companies: list[dict[str, Any]], mapping: FlowMapping
) -> list[tuple[str, dict[str, Any]]]:
    keys = {c["id"]: _propeller_key(c) for c in companies}
    out = []
    for company in companies:
        key = keys[company["id"]]
        if key is None:
            continue
        parent = company.get("parent") or {}
        fields: dict[str, Any] = {
            "name": text(company.get("name")),
            "taxNumber": text(company.get("taxNumber")),
            "email": text(company.get("email")),
            "phone": text(company.get("phone")),
            "parent": keys.get(parent.get("id")) if parent.get("id") is not None else None,
            "language": company.get("language"),
            "active": propeller_active(company),
            "recycleBin": bool(company.get("recycleBin")),
        }
        for name in mapping.propeller_fields:
            fields[name] = text(company.get(name))
        out.append((key, fields))
    return out


# -- HIPE --------------------------------------------------------------------------------
# Company (synchronise-companies guide, n8n node): name, externalId, parentId (a HIPE id),
# email, phone, vat, customFields {key: value}; soft archive DELETE .../archived and
# GET .../unarchived (docs/sandbox-conventions.md). externalId is not unique in HIPE.


def expected_hipe(state: SourceState, mapping: FlowMapping) -> dict[str, Any]:
    custom = {name: state.value(erp) for name, erp in mapping.hipe_custom.items()}
    return {
        "name": state.value("NomClient"),
        "email": state.value("Courriel"),
        "phone": state.value("Telephone"),
        "vat": state.value("NoTPS"),
        "parent": state.value("NoClientParent"),
        "customFields": {k: v for k, v in custom.items() if v is not None},
        "archived": not state.active,
    }


def observed_hipe(companies: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    keys = {c["id"]: text(c.get("externalId")) for c in companies}
    out = []
    for company in companies:
        key = keys[company["id"]]
        if key is None:
            continue
        custom = company.get("customFields") or {}
        parent_id = company.get("parentId")
        out.append(
            (
                key,
                {
                    "name": text(company.get("name")),
                    "email": text(company.get("email")),
                    "phone": text(company.get("phone")),
                    "vat": text(company.get("vat")),
                    "parent": keys.get(parent_id) if parent_id is not None else None,
                    "customFields": {
                        k: (text(v) if isinstance(v, str) else v)
                        for k, v in custom.items()
                        if text(v) is not None
                    },
                    "archived": bool(company.get("archived")),
                },
            )
        )
    return out


# -- Atollon -----------------------------------------------------------------------------
# Crawler ``contact`` (company contact): company.companyName, company.companyCompanyRelation
# [{companyExternalId [{system, id}], relationType}], address [{street, city, zip, region,
# country}], contacts {email: [{contact}], phone: [{contact}]}, vatNo, externalId (unique per
# system), contactGroup [{name}] ("assign the contact to the group"), contactFolder
# [{category}] (every customer an Atollon client: the documented client category).
CLIENT_FOLDER = "com.atollon.project.fpatypecategory.client"


def expected_atollon(state: SourceState, mapping: FlowMapping) -> dict[str, Any]:
    email, phone = state.value("Courriel"), state.value("Telephone")
    parent = state.value("NoClientParent")
    address = state.address()
    fields: dict[str, Any] = {
        "companyName": state.value("NomClient"),
        "parent": [(parent, PARENT_RELATION)] if parent else [],
        # street, city, zip, region, country <- Ligne1, Ville, CodePostal, Province, Pays
        "address": (
            [(address[0], address[1], address[3], address[2], address[4])] if any(address) else []
        ),
        "email": [email] if email else [],
        "phone": [phone] if phone else [],
        "vatNo": state.value("NoTPS"),
        "folders": [CLIENT_FOLDER],  # created once, kept whatever follows
    }
    if mapping.atollon_deactivates:
        fields["inactive"] = not state.active
    else:
        fields["inactive"] = False  # never put in a group it could not leave
    return fields


def _erp_id(ids: Any) -> str | None:
    for entry in ids or []:
        if isinstance(entry, Mapping) and entry.get("system") == ERP_SYSTEM:
            return text(entry.get("id"))
    return None


def observed_atollon(contacts: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for contact in contacts:
        key = _erp_id(contact.get("externalId"))
        if key is None:
            continue
        company = contact.get("company") or {}
        parents = [
            (_erp_id(relation.get("companyExternalId")), relation.get("relationType"))
            for relation in company.get("companyCompanyRelation") or []
        ]
        addresses = [
            tuple(text(a.get(n)) for n in ("street", "city", "zip", "region", "country"))
            for a in contact.get("address") or []
        ]
        infos = contact.get("contacts") or {}
        groups = {g.get("name") for g in contact.get("contactGroup") or []}
        out.append(
            (
                key,
                {
                    "companyName": text(company.get("companyName")),
                    "parent": parents,
                    "address": [a for a in addresses if any(a)],
                    "email": [text(i.get("contact")) for i in infos.get("email") or []],
                    "phone": [text(i.get("contact")) for i in infos.get("phone") or []],
                    "vatNo": text(contact.get("vatNo")),
                    "folders": [f.get("category") for f in contact.get("contactFolder") or []],
                    "inactive": INACTIVE_GROUP in groups,
                },
            )
        )
    return out


def compare_customers(
    states: Mapping[str, SourceState],
    mapping: FlowMapping,
    records: Mapping[str, list[dict[str, Any]]],
) -> list[Report]:
    """Propeller, HIPE and Atollon against every customer the ERP has (or had)."""
    return [
        compare(
            "propeller",
            {k: expected_propeller(s, mapping) for k, s in states.items()},
            observed_propeller(records["propeller"], mapping),
        ),
        compare(
            "hipe",
            {k: expected_hipe(s, mapping) for k, s in states.items()},
            observed_hipe(records["hipe"]),
        ),
        compare(
            "atollon",
            {k: expected_atollon(s, mapping) for k, s in states.items()},
            observed_atollon(records["atollon"]),
        ),
    ]


# -- Atollon products ----------------------------------------------------------------------
# Crawler ``product``: name, refId (the product code), unitPrice, unitPriceCurrencyName,
# vatRateName, unitsName, statusName (Active, Inactive), externalId; "find product based on
# its externalId". The ERP's currency, tax code and unit are the sandbox's Devise, CodeTaxe
# and Unite (docs/sandbox-conventions.md).


def _amount(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value)).normalize()
    except ArithmeticError:
        return None


def expected_atollon_product(state: SourceState) -> dict[str, Any]:
    """An ERP product (``NoProduit``, ``Description``, ``PrixVente``, ``Devise``,
    ``CodeTaxe``, ``Unite``, ``EstActif``); a product deleted in the ERP can no longer be
    sold: ``Inactive``, the documented status."""
    return {
        "name": state.value("Description"),
        "description": state.value("Description"),  # the ERP's one text names and describes
        "refId": state.key,
        "unitPrice": _amount(state.record.get("PrixVente")),
        "unitPriceCurrencyName": state.value("Devise"),
        "vatRateName": state.value("CodeTaxe"),
        "unitsName": state.value("Unite"),
        "statusName": "Active" if state.active else "Inactive",
    }


def observed_atollon_products(products: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for product in products:
        key = _erp_id(product.get("externalId"))
        if key is None:
            continue
        fields = {
            "name": text(product.get("name")),
            "description": text(product.get("description")),
            "refId": text(product.get("refId")),
            "unitPrice": _amount(product.get("unitPrice")),
            "unitPriceCurrencyName": text(product.get("unitPriceCurrencyName")),
            "vatRateName": text(product.get("vatRateName")),
            "unitsName": text(product.get("unitsName")),
            "statusName": text(product.get("statusName")),
        }
        out.append((key, fields))
    return out
