"""Compare the targets with the source, as the simulators store them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.stack import Pipeline

SOURCE = "ERPSYNC"  # Propeller `source` of our sourceIds (PropellerSettings default)
ERP_SYSTEM = "onlineerp"
INACTIVE_ATTRIBUTE = "ERPSYNC_INACTIVE"  # PropellerSettings.inactive_attribute default


@dataclass
class Comparison:
    """Differences between the ERP and one target; empty lists mean equal."""

    target: str
    missing: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    wrong_name: list[str] = field(default_factory=list)
    wrong_parent: list[str] = field(default_factory=list)
    wrong_active: list[str] = field(default_factory=list)
    wrong_price: list[str] = field(default_factory=list)  # products
    wrong_fields: list[str] = field(default_factory=list)  # "<key>.<field>"

    @property
    def equal(self) -> bool:
        return not (
            self.missing
            or self.duplicates
            or self.wrong_name
            or self.wrong_parent
            or self.wrong_active
            or self.wrong_price
            or self.wrong_fields
        )

    def __str__(self) -> str:
        parts = [
            f"{name}={values[:5]}{'…' if len(values) > 5 else ''} ({len(values)})"
            for name, values in (
                ("missing", self.missing),
                ("duplicates", self.duplicates),
                ("wrong_name", self.wrong_name),
                ("wrong_parent", self.wrong_parent),
                ("wrong_active", self.wrong_active),
                ("wrong_price", self.wrong_price),
                ("wrong_fields", self.wrong_fields),
            )
            if values
        ]
        return f"{self.target}: " + (", ".join(parts) or "equal")


def erp_customers(p: Pipeline) -> dict[str, dict[str, Any]]:
    return {c["NoClient"]: c for c in p.records("onlineerp", "Customer")}


def _expected_name(customer: dict[str, Any]) -> str:
    return str(customer["NomClient"]).strip()


def _text(value: Any) -> str | None:
    """A value as a target shows it: stripped, empty meaning absent."""
    text = str(value).strip() if value is not None else ""
    return text or None


#: ERP customer field -> Propeller company field, compared as text
PROPELLER_TEXT = {"Courriel": "email", "Telephone": "phone", "NoTPS": "taxNumber"}


def propeller_inactive(company: dict[str, Any]) -> bool:
    """Whether a company carries erpsync's inactive marker (the default attribute)."""
    return {"name": INACTIVE_ATTRIBUTE, "value": "Y"} in (company.get("attributes") or [])


def contact_patches(source: dict[str, dict[str, Any]]) -> int:
    """PATCHes a bulk load of these new customers would make with documented-only items
    (``bulk_contact_fields = "patch"``): one per company with an e-mail or a phone."""
    return sum(1 for c in source.values() if _text(c.get("Courriel")) or _text(c.get("Telephone")))


def compare_propeller(p: Pipeline, source: dict[str, dict[str, Any]]) -> Comparison:
    """Every ERP customer is one live company, field by field; an inactive one is marked
    inactive (an attribute the API can take back), never deleted."""
    result = Comparison("propeller")
    by_key: dict[str, list[dict[str, Any]]] = {}
    by_id: dict[int, str] = {}
    for company in p.records("propeller", "companies"):
        keys = [s["sourceId"] for s in company.get("sources") or [] if s.get("source") == SOURCE]
        for key in keys:
            by_key.setdefault(str(key), []).append(company)
            by_id[company["id"]] = str(key)
    for key, customer in source.items():
        found = [c for c in by_key.get(key, []) if not c.get("recycleBin")]
        if not found:
            result.missing.append(key)
            continue
        if len(found) > 1:
            result.duplicates.append(key)
        company = found[0]
        if propeller_inactive(company) == bool(customer["EstActif"]):
            result.wrong_active.append(key)
        if company["name"] != _expected_name(customer):
            result.wrong_name.append(key)
        parent = company.get("parent") or {}
        parent_key = by_id.get(int(parent["id"])) if parent.get("id") is not None else None
        if parent_key != customer["NoClientParent"]:
            result.wrong_parent.append(key)
        result.wrong_fields.extend(
            f"{key}.{field}"
            for erp_field, field in PROPELLER_TEXT.items()
            if _text(company.get(field)) != _text(customer.get(erp_field))
        )
    return result


def compare_hipe(p: Pipeline, source: dict[str, dict[str, Any]]) -> Comparison:
    result = Comparison("hipe")
    companies = p.records("hipe", "companies")
    counts = Counter(str(c.get("externalId")) for c in companies)
    result.duplicates = sorted(k for k, n in counts.items() if n > 1 and k in source)
    by_key = {str(c.get("externalId")): c for c in companies}
    by_id = {c["id"]: str(c.get("externalId")) for c in companies}
    for key, customer in source.items():
        company = by_key.get(key)
        if company is None:
            if customer["EstActif"]:
                result.missing.append(key)
            continue
        if bool(company.get("archived")) == bool(customer["EstActif"]):
            result.wrong_active.append(key)
        if not customer["EstActif"]:
            continue
        if company.get("name") != _expected_name(customer):
            result.wrong_name.append(key)
        parent_key = by_id.get(company.get("parentId")) if company.get("parentId") else None
        if parent_key != customer["NoClientParent"]:
            result.wrong_parent.append(key)
    return result


def _external(record: dict[str, Any], system: str = ERP_SYSTEM) -> str | None:
    for entry in record.get("externalId") or []:
        if entry.get("system") == system:
            return str(entry.get("id"))
    return None


def compare_atollon(p: Pipeline, source: dict[str, dict[str, Any]]) -> Comparison:
    result = Comparison("atollon")
    contacts = p.records("atollon", "contacts")
    counts = Counter(_external(c) for c in contacts)
    result.duplicates = sorted(k for k, n in counts.items() if k and n > 1 and k in source)
    by_key = {_external(c): c for c in contacts}
    for key, customer in source.items():
        contact = by_key.get(key)
        if contact is None:
            result.missing.append(key)
            continue
        # systems.atollon.deactivation = "none" (the default): the crawler documents no way
        # to undo a deactivation, so none is sent and no contact is ever in Inactive
        groups = {g.get("name") for g in contact.get("contactGroup") or []}
        if "Inactive" in groups:
            result.wrong_active.append(key)
        company = contact.get("company") or {}
        if company.get("companyName") != _expected_name(customer):
            result.wrong_name.append(key)
        relations = company.get("companyCompanyRelation") or []
        parents = [
            str(ext.get("id"))
            for rel in relations
            for ext in rel.get("companyExternalId") or []
            if ext.get("system") == ERP_SYSTEM
        ]
        expected = [customer["NoClientParent"]] if customer["NoClientParent"] else []
        if parents != expected:
            result.wrong_parent.append(key)
    return result


def compare_atollon_products(p: Pipeline) -> Comparison:
    """ERP products against Atollon products: name, price and status."""
    result = Comparison("atollon products")
    source = {r["NoProduit"]: r for r in p.records("onlineerp", "Product")}
    products = p.records("atollon", "products")
    counts = Counter(_external(r) for r in products)
    result.duplicates = sorted(k for k, n in counts.items() if k and n > 1 and k in source)
    by_key = {_external(r): r for r in products}
    for key, item in source.items():
        product = by_key.get(key)
        if product is None:
            result.missing.append(key)
            continue
        if (product.get("statusName") == "Active") != bool(item["EstActif"]):
            result.wrong_active.append(key)
        if product.get("name") != str(item["Description"]).strip():
            result.wrong_name.append(key)
        price = product.get("unitPrice")
        if price is None or abs(float(price) - float(item["PrixVente"])) > 0.005:
            result.wrong_price.append(key)
    return result


def compare_all(p: Pipeline) -> list[Comparison]:
    source = erp_customers(p)
    return [compare_propeller(p, source), compare_hipe(p, source), compare_atollon(p, source)]


def writes(stats: dict[str, Any]) -> int:
    return int(stats["writes"])


def count_requests(stats: dict[str, Any], method: str, route_prefix: str) -> int:
    return sum(
        row["count"]
        for row in stats["requests"]
        if row["method"] == method
        and row["route"].startswith(route_prefix)
        and str(row["status"]).isdigit()
        and int(row["status"]) < 400
    )
