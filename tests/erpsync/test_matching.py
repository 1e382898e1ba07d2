"""Issue 19: the normal forms match rules compare, and the flow file's ``match`` setting."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from erpsync.errors import ConfigError
from erpsync.matching import email_key, keys_of, name_key, strip_accents, tax_key
from erpsync.settings import load_settings

SYSTEMS: dict[str, Any] = {
    "onlineerp": {"base_url": "http://127.0.0.1:1", "licence_code": "L", "secret": "s3"},
    "propeller": {"base_url": "http://127.0.0.1:1", "client_id": "c", "client_secret": "s1"},
    "hipe": {"base_url": "http://127.0.0.1:1", "access_token": "t"},
    "atollon": {"base_url": "http://127.0.0.1:1", "instance": "i"},
}
TARGETS = ["propeller", "hipe", "atollon"]


@pytest.mark.parametrize(
    ("typed", "erp"),
    [
        ("EMBALLAGES DUPONT INC", "Emballages Dupont inc."),
        ("  emballages   dupont  ", "Emballages Dupont"),
        ("Érablière Côté Ltée", "Erabliere Cote"),
        ("Erabliere Cote, Limitée.", "Érablière Côté ltée"),
        ("Pivovar Nový s.r.o.", "PIVOVAR NOVY SRO"),
        ("Pivovar Nový, spol. s r.o.", "Pivovar Novy"),
        ("Müller GmbH", "MULLER"),
        ("Dupont & Fils", "dupont fils"),
        ("Acme Corp. Ltd", "ACME"),
    ],
)
def test_names_written_differently_have_one_normal_form(typed: str, erp: str) -> None:
    assert name_key(typed) == name_key(erp)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("Dupont & Fils", "Dupont"),  # "Fils" is part of the name, not a legal form
        ("Emballages Dupont", "Emballages Dupuis"),
        ("Transport Roy (Québec)", "Transport Roy"),
    ],
)
def test_different_names_stay_apart(one: str, other: str) -> None:
    assert name_key(one) != name_key(other)


def test_a_legal_form_alone_is_a_name() -> None:
    assert name_key("Inc.") == "inc"
    assert name_key("S.R.O.") == "s r o"


@pytest.mark.parametrize("blank", [None, "", "   ", "—", ".,;", 42])
def test_nothing_to_compare_never_matches(blank: Any) -> None:
    assert name_key(blank) is None
    assert tax_key(blank) is None
    assert email_key(blank) is None


def test_tax_numbers_and_emails() -> None:
    assert tax_key("123 456 789 rt 0001") == tax_key("123456789RT0001") == "123456789rt0001"
    assert tax_key("CZ-2548 9512") == "cz25489512"
    assert email_key(" Compta.C000001@EXEMPLE.qc.ca ") == "compta.c000001@exemple.qc.ca"
    assert email_key("not an address") is None


def test_keys_of_follows_the_rules_order_and_leaves_out_blanks() -> None:
    values = {"name": "Acme Inc.", "email": "", "tax_number": "12 34"}
    assert keys_of(values, ("name", "email", "tax_number")) == {
        "name": "acme",
        "tax_number": "1234",
    }
    assert list(keys_of(values, ("tax_number", "name"))) == ["tax_number", "name"]


_text = st.text(st.characters(codec="utf-8"), max_size=40)


@given(_text)
def test_name_key_is_idempotent(text: str) -> None:
    key = name_key(text)
    if key is not None:
        assert name_key(key) == key


@given(_text, st.sampled_from([str.upper, str.lower, str.title, str.casefold]))
def test_case_never_matters(text: str, change: Any) -> None:
    assert name_key(change(text)) == name_key(text)
    assert tax_key(change(text)) == tax_key(text)


@given(_text, st.sampled_from([" ", "  ", ", ", " - ", ". "]))
def test_blanks_and_punctuation_between_words_never_matter(text: str, glue: str) -> None:
    words = text.split()
    assert name_key(glue.join(words)) == name_key(" ".join(words))


@given(_text)
def test_accents_never_matter(text: str) -> None:
    assert name_key(strip_accents(text)) == name_key(text)


@given(
    st.text(st.sampled_from("abcdefghij "), min_size=1, max_size=20).filter(lambda t: t.strip()),
    st.sampled_from(["Inc.", "Ltée", "s.r.o.", "GmbH", "Corp", "LLC", "S.A.R.L."]),
)
def test_a_legal_suffix_never_matters(name: str, suffix: str) -> None:
    assert name_key(f"{name} {suffix}") == name_key(name)


def problems(**flow: Any) -> list[str]:
    settings = {"source": "onlineerp", "entity": "customer", "targets": TARGETS, **flow}
    try:
        load_settings(systems=SYSTEMS, flows={"customers": settings})
    except ConfigError as error:
        return list(error.problems)
    return []


def test_match_rules_for_every_target_or_per_target() -> None:
    assert problems(match=["tax_number", "email", "name"]) == []
    assert problems(match={"propeller": ["email"], "hipe": ["name", "tax_number"]}) == []
    settings = load_settings(
        systems=SYSTEMS,
        flows={
            "customers": {
                "source": "onlineerp",
                "entity": "customer",
                "targets": TARGETS,
                "match": {"hipe": ["email", "name"]},
            }
        },
    )
    assert settings.flows["customers"].match_rules() == {"hipe": ("email", "name")}
    everywhere = load_settings(
        systems=SYSTEMS,
        flows={
            "customers": {
                "source": "onlineerp",
                "entity": "customer",
                "targets": TARGETS,
                "match": ["name"],
            }
        },
    )
    assert everywhere.flows["customers"].match_rules() == dict.fromkeys(TARGETS, ("name",))


@pytest.mark.parametrize(
    ("match", "said"),
    [
        (["vat"], "flows.customers.match.propeller: unknown rule(s) 'vat'"),
        (["email", "email"], "flows.customers.match.hipe: a rule is listed twice"),
        ({"onlineerp": ["name"]}, "onlineerp is not a target of this flow"),
        ({"hipe": "name"}, "hipe: Input should be a valid list"),
    ],
)
def test_wrong_match_rules_are_refused_at_start_up(match: Any, said: str) -> None:
    assert any(said in p for p in problems(match=match)), problems(match=match)


def test_only_customer_flows_adopt() -> None:
    found: list[str] = []
    try:
        load_settings(
            systems=SYSTEMS,
            flows={
                "products": {
                    "source": "onlineerp",
                    "entity": "product",
                    "targets": ["atollon"],
                    "match": ["name"],
                }
            },
        )
    except ConfigError as error:
        found = list(error.problems)
    assert any("only customer flows can adopt" in p for p in found), found
