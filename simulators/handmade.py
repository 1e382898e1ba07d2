"""Hand-made target records: companies typed in by people before erpsync was switched on.

``POST /_sandbox/handmade`` on the Propeller, HIPE and Atollon simulators (and ``erpsync
sandbox --handmade N``) loads the same set into each: companies *without* an external id of
erpsync's, each meant to match one ERP customer of the seed (:mod:`simulators.seed`, same
``customers`` and ``random_seed``) in one way, plus a few ambiguous cases:

* ``tax_number``: the customer's tax number written with blanks (``123 456 789 RT 0001``),
  under a name of its own (the customer's first word and "compte web");
* ``email``: the customer's e-mail in other case, under a name of its own;
* ``name``: only the name, written differently (case, accents dropped, blanks, punctuation,
  the legal suffix changed or dropped); no e-mail, no tax number;
* ``two_targets``: two records carrying one customer's tax number (the rule finds two);
* ``two_sources``: one record carrying one customer's tax number and another customer's
  e-mail (two customers find it).

The customers of the ambiguous cases are nobody's parent (a child of a record held for an
operator's decision would wait for it).

The answer lists every record with what it was made to match (``manifest``), so tests and
demos know what an adoption should do. Names are picked so that nothing else matches by
accident: a name-only record's customer has a name no other customer shares (even ignoring
its legal suffix), and the other records' names are like no customer's.
The set depends only on the request: every target loads the same records.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from simulators import seed as seed_data

#: how each kind of record is made
KINDS = ("tax_number", "email", "name", "two_targets", "two_sources")


class HandmadeRequest(BaseModel):
    """Body of ``POST /_sandbox/handmade``."""

    model_config = ConfigDict(extra="forbid")

    #: the seed the ERP holds (``POST /_sandbox/seed``'s ``customers`` and ``random_seed``)
    customers: int = Field(default=100, ge=1, le=1_000_000)
    random_seed: int = 42
    #: records that match one customer each (a third by tax number, e-mail, name)
    matches: int = Field(default=30, ge=0, le=100_000)
    #: ambiguous cases (half two records for one customer, half one for two customers)
    ambiguous: int = Field(default=4, ge=0, le=10_000)


@dataclass
class Handmade:
    """One hand-made company, and what it was made to match."""

    index: int
    name: str
    email: str | None
    tax_number: str | None
    kind: str
    #: the ERP keys it was made to match (two for ``two_sources``)
    keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _plain(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


#: the seed's legal suffixes (a matcher drops them); its others ("& Fils") are words
_LEGAL = ("inc.", "ltée", "Corp.", "enr.", "S.E.N.C.")


def _stem(name: str) -> str:
    """A strict key for the seeder's own choice: the name without accents, case, blanks,
    punctuation and its legal suffix (at least as coarse as any matcher's)."""
    for suffix in _LEGAL:
        if name.endswith(" " + suffix):
            name = name[: -len(suffix) - 1]
            break
    return re.sub(r"[^0-9a-z]", "", _plain(name).casefold())


_SUFFIX_VARIANTS = {
    "inc.": ["Inc", "INC.", ""],
    "ltée": ["Ltee", "LTÉE", "Limitée", ""],
    "Corp.": ["Corp", "corp.", ""],
    "enr.": ["ENR", ""],
    "S.E.N.C.": ["SENC", "s.e.n.c", ""],
}


def _written_differently(name: str, rng: random.Random) -> str:
    """The name as a person might type it: another case, accents dropped, blanks doubled,
    punctuation added, the legal suffix changed or dropped (never the name itself)."""
    words = name.split(" ")
    if words[-1] in _SUFFIX_VARIANTS:
        words[-1] = rng.choice(_SUFFIX_VARIANTS[words[-1]])
    text = " ".join(w for w in words if w)
    style = rng.randrange(4)
    if style == 0:
        text = _plain(text).upper()
    elif style == 1:
        text = "  ".join(text.casefold().split(" "))
    elif style == 2:
        text = _plain(text).replace(" ", ", ", 1)
    else:
        text = f" {text.title()} ."
    return text if text != name else text.upper()


def _spaced(tax: str) -> str:
    """``123456789RT0001`` -> ``123 456 789 rt 0001``."""
    digits, rest = tax[:9], tax[9:]
    return f"{digits[:3]} {digits[3:6]} {digits[6:]} {rest[:2].lower()} {rest[2:]}"


def _other_case(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local.title()}@{domain.upper()}"


def _own_name(customer: dict[str, Any], index: int) -> str:
    """A name like no customer's (seed names never hold "compte")."""
    first = str(customer["NomClient"]).split(" ")[0]
    return f"{first} compte web {index + 1}"


def generate(request: HandmadeRequest) -> list[Handmade]:
    """The hand-made set of a request (the same request, the same records)."""
    data = seed_data.generate(request.customers, 0, 0, request.random_seed)
    customers = data.customers
    stems = Counter(_stem(c["NomClient"]) for c in customers)
    odd = set(seed_data._ODD)
    taxes = Counter(c["NoTPS"] for c in customers)
    rng = random.Random(f"handmade-{request.random_seed}")
    # a name-only record's customer: a name no other customer shares
    named = [
        c for c in customers if stems[_stem(c["NomClient"])] == 1 and c["NomClient"] not in odd
    ]
    rng.shuffle(named)
    named = named[: request.matches // 3]
    taken = {c["NoClient"] for c in named}
    others = [c for c in customers if c["NoClient"] not in taken and taxes[c["NoTPS"]] == 1]
    rng.shuffle(others)
    # the ambiguous ones are nobody's parent: no child waits for a record held for review
    parents = {c["NoClientParent"] for c in customers if c["NoClientParent"]}
    leaves = [c for c in others if c["NoClient"] not in parents]
    held = leaves[: request.ambiguous // 2 + 2 * (request.ambiguous - request.ambiguous // 2)]
    others = [c for c in others if c not in held]
    pairs = request.ambiguous - request.ambiguous // 2
    short = (
        len(named) < request.matches // 3
        or len(others) < request.matches - request.matches // 3
        or len(held) < request.ambiguous // 2 + 2 * pairs
    )
    if short:
        raise ValueError(
            f"{request.customers} customers are too few for {request.matches} matches and "
            f"{request.ambiguous} ambiguous cases (seed more customers)"
        )
    made: list[Handmade] = []
    by_name, picks, ambiguous = iter(named), iter(others), iter(held)
    for n in range(request.matches):
        kind = ("tax_number", "email", "name")[n % 3]
        customer = next(by_name) if kind == "name" else next(picks)
        key = customer["NoClient"]
        if kind == "tax_number":
            made.append(Handmade(len(made), _own_name(customer, len(made)), None,
                                 _spaced(customer["NoTPS"]), kind, [key]))  # fmt: skip
        elif kind == "email":
            made.append(Handmade(len(made), _own_name(customer, len(made)),
                                 _other_case(customer["Courriel"]), None, kind, [key]))  # fmt: skip
        else:
            name = _written_differently(customer["NomClient"], rng)
            made.append(Handmade(len(made), name, None, None, kind, [key]))
    for _ in range(request.ambiguous // 2):  # one customer, two records
        customer = next(ambiguous)
        for spelling in (customer["NoTPS"], _spaced(customer["NoTPS"])):
            made.append(Handmade(len(made), _own_name(customer, len(made)), None, spelling,
                                 "two_targets", [customer["NoClient"]]))  # fmt: skip
    for _ in range(pairs):  # one record, two customers
        first, second = next(ambiguous), next(ambiguous)
        made.append(Handmade(len(made), _own_name(first, len(made)), second["Courriel"],
                             first["NoTPS"], "two_sources",
                             [first["NoClient"], second["NoClient"]]))  # fmt: skip
    return made
