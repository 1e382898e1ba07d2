"""``erpsync errors`` and ``erpsync doctor``, run as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomli_w

from bench.stack import REPO, sandbox_systems
from simulators.server import RunningSandbox

SECRETS = ("sandbox-secret", "sandbox-token", "wrong-secret-123")


def run_cli(*args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERPSYNC_")}
    if config is not None:
        env["ERPSYNC_CONFIG"] = str(config)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(path: Path, systems: dict[str, Any], redis_url: str) -> Path:
    path.write_text(tomli_w.dumps({"systems": systems, "redis_url": redis_url}), encoding="utf-8")
    return path


def test_errors_lists_every_system_with_hints_as_json() -> None:
    result = run_cli("errors", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert {r["system"] for r in rows} == {"onlineerp", "propeller", "hipe", "atollon"}
    by_code = {(r["system"], r["match"]): r for r in rows}
    row = by_code[("propeller", "40005")]
    assert row["class"] == "permanent"
    assert row["action"] == "dead-letter"
    assert "duplicate" in row["hint"]
    assert by_code[("propeller", "40007")]["class"] == "dependency"
    assert by_code[("propeller", "http-429")]["class"] == "transient"
    for code in ("10005", "10006", "10007", "10015", "10016", "40004", "40006", "40008", "90006"):
        assert ("propeller", code) in by_code, code


def test_error_overrides_from_the_config_show_in_the_table(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(tomli_w.dumps({"errors": {"propeller": {"40005": "transient"}}}))
    rows = json.loads(run_cli("errors", "--json", "--system", "propeller", config=config).stdout)
    assert next(r for r in rows if r["match"] == "40005")["class"] == "transient"


def test_doctor_passes_against_the_sandbox(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    config = write_config(tmp_path / "c.toml", sandbox_systems(sandbox), redis_url)
    result = run_cli("doctor", "--json", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {r["system"]: r for r in json.loads(result.stdout)["checks"]}
    assert set(rows) == {"redis", "onlineerp", "propeller", "hipe", "atollon"}
    assert all(r["ok"] for r in rows.values()), rows
    # what Atollon cannot show is said where operators look first
    assert 'known limits: deactivation = "none"' in rows["atollon"]["detail"]


def test_doctor_shows_that_an_atollon_group_deactivation_cannot_be_undone(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    systems = sandbox_systems(sandbox)
    systems["atollon"]["deactivation"] = "group"
    config = write_config(tmp_path / "c.toml", systems, redis_url)
    result = run_cli("doctor", "--json", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    detail = {r["system"]: r for r in json.loads(result.stdout)["checks"]}["atollon"]["detail"]
    assert "assigned to the Inactive contact group" in detail
    assert "a reactivation cannot take it out" in detail


def test_doctor_names_propeller_and_bad_credentials_without_the_secret(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    systems = sandbox_systems(sandbox)
    systems["propeller"]["client_secret"] = "wrong-secret-123"
    config = write_config(tmp_path / "c.toml", systems, redis_url)
    result = run_cli("doctor", config=config)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    failing = [line for line in output.splitlines() if "FAIL" in line]
    assert len(failing) == 1, output
    assert "propeller" in failing[0]
    assert "bad credentials" in failing[0]
    for secret in SECRETS:
        assert secret not in output


def test_doctor_names_an_unreachable_system(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    systems = sandbox_systems(sandbox)
    systems["hipe"]["base_url"] = "http://127.0.0.1:9"  # discard port: nothing listens
    config = write_config(tmp_path / "c.toml", systems, redis_url)
    doctor = json.loads(run_cli("doctor", "--json", config=config).stdout)
    rows = {r["system"]: r for r in doctor["checks"]}
    assert rows["hipe"] == {**rows["hipe"], "ok": False, "detail": "unreachable"}


def test_doctor_lists_every_config_problem_and_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "systems": {
                    "propeller": {"base_url": "http://10.1.2.3", "client_id": "x"},
                    "hipe": {"base_url": "ftp://x", "access_token": "t0ken"},
                },
                "flows": {"c": {"source": "onlineerp", "entity": "customer", "targets": ["hipe"]}},
            }
        )
    )
    result = run_cli("doctor", config=config)
    assert result.returncode == 2
    err = result.stderr
    assert "client_secret" in err
    assert "non-loopback" in err
    assert "systems.hipe.base_url" in err


def mapped_config(path: Path, sandbox: RunningSandbox, redis_url: str) -> Path:
    """The sandbox with a customers flow that maps an ERP custom field into HIPE."""
    config = {
        "systems": sandbox_systems(sandbox),
        "redis_url": redis_url,
        "flows": {
            "customers": {
                "source": "onlineerp",
                "entity": "customer",
                "targets": ["propeller", "hipe"],
                "source_fields": {"segment": "Secteur"},
                "mapping": {
                    "hipe": {
                        "fields": {"phone": "custom.segment"},
                        "custom_fields": {"erpSegment": "custom.segment"},
                    }
                },
            },
            "products": {
                "enabled": False,
                "source": "onlineerp",
                "entity": "product",
                "targets": ["atollon"],
            },
        },
    }
    path.write_text(tomli_w.dumps(config), encoding="utf-8")
    return path


#: where each part of a customer's addresses comes from in the ERP (invoice address and
#: delivery addresses), and the HIPE and Propeller address fields it reaches
_ADDRESS_SOURCES = {
    "code": "invoice (Adresse), delivery:<AdressesLivraison[].CodeAdresse>",
    "type": "invoice (Adresse), delivery (AdressesLivraison[])",
    "line1": "Adresse.Ligne1, AdressesLivraison[].Ligne1",
    "city": "Adresse.Ville, AdressesLivraison[].Ville",
    "region": "Adresse.Province, AdressesLivraison[].Province",
    "postal_code": "Adresse.CodePostal, AdressesLivraison[].CodePostal",
    "country": "Adresse.Pays, AdressesLivraison[].Pays",
}
HIPE_ADDRESS_ROWS = [
    (_ADDRESS_SOURCES[part], f"addresses[].{part}", f"addresses[].{field}")
    for part, field in (
        ("code", "name"),
        ("line1", "address"),
        ("city", "city"),
        ("region", "state"),
        ("postal_code", "zipCode"),
        ("country", "country"),
    )
]
PROPELLER_ADDRESS_ROWS = [
    (_ADDRESS_SOURCES[part], f"addresses[].{part}", f"addresses[].{field}")
    for part, field in (
        ("code", "code"),
        ("type", "type"),
        ("line1", "street"),
        ("city", "city"),
        ("region", "region"),
        ("postal_code", "postalCode"),
        ("country", "country"),
    )
]


#: the HIPE customer mapping doctor shows (every row, with its origin)
HIPE_CUSTOMER_MAPPING = [
    {"source": "NoClient", "canonical": "key", "target": "externalId", "origin": "default"},
    {"source": "NomClient", "canonical": "name", "target": "name", "origin": "default"},
    {"source": "Courriel", "canonical": "email", "target": "email", "origin": "default"},
    {
        "source": "Secteur",
        "canonical": "custom.segment",
        "target": "phone",
        "origin": "fields",
    },
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
        {"source": source, "canonical": canonical, "target": target, "origin": "default"}
        for source, canonical, target in HIPE_ADDRESS_ROWS
    ),
    {
        "source": "Secteur",
        "canonical": "custom.segment",
        "target": "customFields.erpSegment",
        "origin": "custom_fields",
    },
]
#: the Propeller customer mapping doctor shows (source, canonical, target)
PROPELLER_CUSTOMER_ROWS = [
    ("NoClient", "key", "sourceId"),
    ("NomClient", "name", "name"),
    ("NoTPS", "tax_number", "taxNumber"),
    ("Courriel", "email", "email"),
    ("Telephone", "phone", "phone"),
    ("NoClientParent", "parent_key", "parent.sourceId"),
    ("EstActif", "active", "attributes[inactive_attribute] = Y / N"),
    *PROPELLER_ADDRESS_ROWS,
]
#: the Atollon product mapping doctor shows (source, canonical, target)
ATOLLON_PRODUCT_ROWS = [
    ("NoProduit", "key", "externalId[].id"),
    ("NoProduit", "key", "refId"),
    ("Description", "name", "name"),
    ("Description", "name", "description"),
    ("PrixVente", "price", "unitPrice"),
    ("Devise", "currency", "unitPriceCurrencyName"),
    ("CodeTaxe", "vat_rate", "vatRateName"),
    ("Unite", "units", "unitsName"),
    ("EstActif", "active", "statusName"),
]


def test_doctor_json_shows_the_effective_mapping_of_every_flow_and_target(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    config = mapped_config(tmp_path / "c.toml", sandbox, redis_url)
    result = run_cli("doctor", "--json", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    flows = json.loads(result.stdout)["flows"]
    assert set(flows) == {"customers", "products"}
    customers = flows["customers"]
    assert {k: customers[k] for k in ("enabled", "source", "entity")} == {
        "enabled": True,
        "source": "onlineerp",
        "entity": "customer",
    }
    assert set(customers["targets"]) == {"propeller", "hipe"}
    hipe = customers["targets"]["hipe"]
    assert hipe["mapping"] == HIPE_CUSTOMER_MAPPING
    propeller = customers["targets"]["propeller"]["mapping"]
    assert [
        (r["source"], r["canonical"], r["target"]) for r in propeller
    ] == PROPELLER_CUSTOMER_ROWS
    products = flows["products"]
    assert products["enabled"] is False
    assert [
        (r["source"], r["canonical"], r["target"])
        for r in products["targets"]["atollon"]["mapping"]
    ] == ATOLLON_PRODUCT_ROWS


def test_doctor_table_shows_each_flow_and_target_mapping(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    config = mapped_config(tmp_path / "c.toml", sandbox, redis_url)
    result = run_cli("doctor", config=config)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "flow customers: customer onlineerp -> hipe" in result.stdout
    assert "flow customers: customer onlineerp -> propeller" in result.stdout
    assert "flow products (disabled): product onlineerp -> atollon" in result.stdout

    rows = [[cell.strip() for cell in line.strip("│ ").split("│")] for line in lines if "│" in line]
    assert ["Secteur", "custom.segment", "customFields.erpSegment", "custom_fields"] in rows
    assert ["Secteur", "custom.segment", "phone", "fields"] in rows
    assert ["NoTPS", "tax_number", "taxNumber", "default"] in rows
    assert ["NoTPS", "tax_number", "vat", "default"] in rows
    assert ["Devise", "currency", "unitPriceCurrencyName", "default"] in rows
    assert ["CodeTaxe", "vat_rate", "vatRateName", "default"] in rows


INVOICE_FLOWS: dict[str, Any] = {
    "billing": {"source": "atollon", "entity": "billing", "targets": ["onlineerp"]},
    "invoices": {"source": "onlineerp", "entity": "invoice", "targets": ["atollon"]},
}


def test_doctor_checks_the_invoice_state_map_against_atollons_states(
    sandbox: RunningSandbox, tmp_path: Path, redis_url: str
) -> None:
    systems = sandbox_systems(sandbox)
    config = tmp_path / "c.toml"
    config.write_text(
        tomli_w.dumps({"systems": systems, "redis_url": redis_url, "flows": INVOICE_FLOWS})
    )
    rows = {
        r["system"]: r
        for r in json.loads(run_cli("doctor", "--json", config=config).stdout)["checks"]
    }
    assert rows["atollon invoice states"] == {
        "system": "atollon invoice states",
        "ok": True,
        "detail": "open -> Issued, partly_paid -> Pending, paid -> Paid, cancelled -> Cancelled",
    }

    flows = json.loads(json.dumps(INVOICE_FLOWS))
    flows["invoices"]["mapping"] = {"atollon": {"fields": {"paid": "Payée", "open": "Issued"}}}
    config.write_text(tomli_w.dumps({"systems": systems, "redis_url": redis_url, "flows": flows}))
    result = run_cli("doctor", "--json", config=config)
    assert result.returncode == 1, "an unknown state name is a configuration error"
    rows = {r["system"]: r for r in json.loads(result.stdout)["checks"]}
    assert rows["atollon invoice states"]["ok"] is False
    assert rows["atollon invoice states"]["detail"] == (
        "flows.invoices.mapping.atollon.fields: paid = 'Payée' not among Atollon's invoice "
        "states (Issued, Pending, Paid, Cancelled, Schváleno)"
    )
    assert all(r["ok"] for name, r in rows.items() if name != "atollon invoice states")

    flows["invoices"]["mapping"] = {"atollon": {"fields": {"refunded": "Paid"}}}
    config.write_text(tomli_w.dumps({"systems": systems, "redis_url": redis_url, "flows": flows}))
    result = run_cli("doctor", config=config)
    assert result.returncode != 0
    assert "flows.invoices.mapping.atollon.fields.refunded" in result.stdout + result.stderr, (
        "a state that is not an ERP invoice state is refused with the settings"
    )
