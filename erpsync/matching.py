"""Match rules: how a source record finds a target record that has no external id of ours.

A flow may list, per target, ordered rules (``match = ["tax_number", "email", "name"]``
in its flow file, see :func:`match_rules`). Each rule compares one field of the source
record with the same field of a target record, both in a normal form:

* ``tax_number``: letters and digits only, upper case (``123 456 789 RT0001`` =
  ``123456789rt0001``);
* ``email``: trimmed, case folded;
* ``name``: accents removed, case folded, punctuation and repeated blanks collapsed, and
  legal suffixes dropped (``Inc.``, ``Ltée``, ``s.r.o.``, ``GmbH``…: :data:`LEGAL_SUFFIXES`),
  so that ``Émballages Dupont, Inc.`` = ``EMBALLAGES DUPONT``.

A value with nothing left after normalising (blank, punctuation only) never matches.

The rules are tried in their order; the first rule under which a source record finds any
target record decides (:func:`decide`): one target record is a match, several are
ambiguous. A target record that several source records match is ambiguous for each of
them. Nothing ambiguous is adopted: an operator decides (``erpsync adopt review``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

Rule = Literal["tax_number", "email", "name"]
#: the rules a flow file may name, and the canonical field each compares
RULES: tuple[Rule, ...] = ("tax_number", "email", "name")
#: targets whose records can be adopted (the link writes our external id onto them)
ADOPTING_TARGETS = frozenset({"propeller", "hipe", "atollon"})
#: entities whose flows may have match rules
ADOPTING_ENTITIES = frozenset({"customer"})

#: legal forms dropped from the end of a name (compared after normalising, as words):
#: English, French (Québec), German, Czech and Slovak, Dutch, Italian, Spanish
LEGAL_SUFFIXES: tuple[str, ...] = (
    "inc",
    "incorporated",
    "ltd",
    "limited",
    "llc",
    "llp",
    "corp",
    "corporation",
    "co",
    "company",
    "plc",
    "ltee",
    "limitee",
    "enr",
    "senc",
    "s e n c",
    "sa",
    "s a",
    "sarl",
    "s a r l",
    "sas",
    "gmbh",
    "ag",
    "kg",
    "sro",
    "s r o",
    "as",
    "a s",
    "spol s r o",
    "bv",
    "b v",
    "nv",
    "n v",
    "srl",
    "spa",
    "sl",
)
_SUFFIX_WORDS = sorted((tuple(s.split()) for s in LEGAL_SUFFIXES), key=len, reverse=True)
_NOT_WORD = re.compile(r"[^\w]+|_+")
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")


def strip_accents(text: str) -> str:
    """``Émballages Côté`` -> ``Emballages Cote`` (compatibility decomposition, marks
    dropped; ``ß`` and ligatures become their letters)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def name_key(value: Any) -> str | None:
    """The normal form of a company name (None: nothing to compare)."""
    if not isinstance(value, str):
        return None
    words = _NOT_WORD.sub(" ", strip_accents(value).casefold()).split()
    # legal suffixes, possibly several ("& Co. Ltd"), from the end; the name itself stays
    dropped = True
    while dropped and len(words) > 1:
        dropped = False
        for suffix in _SUFFIX_WORDS:
            if len(words) > len(suffix) and tuple(words[-len(suffix) :]) == suffix:
                del words[-len(suffix) :]
                dropped = True
                break
    return " ".join(words) or None


def email_key(value: Any) -> str | None:
    """The normal form of an e-mail address (None: nothing to compare)."""
    if not isinstance(value, str):
        return None
    text = value.strip().casefold()
    return text if "@" in text else None


def tax_key(value: Any) -> str | None:
    """The normal form of a tax number: letters and digits, case folded."""
    if not isinstance(value, str):
        return None
    return _NOT_ALNUM.sub("", strip_accents(value).casefold()) or None


NORMALISERS = {"tax_number": tax_key, "email": email_key, "name": name_key}


def atollon_name_key(value: Any) -> str | None:
    """How Atollon compares company names on its side (the sandbox's reading: case and
    blanks folded), for the contacts without our id it attaches a new one to."""
    if not isinstance(value, str):
        return None
    return " ".join(value.split()).casefold() or None


def keys_of(values: Mapping[str, Any], rules: tuple[str, ...] = RULES) -> dict[str, str]:
    """The normal forms of a record's fields under ``rules`` (fields without one left out)."""
    found: dict[str, str] = {}
    for rule in rules:
        key = NORMALISERS[rule](values.get(rule))
        if key is not None:
            found[rule] = key
    return found


def rules_problems(flow: str, entity: str, targets: list[str], match: object) -> list[str]:
    """Why a flow's ``match`` setting is wrong (empty: it is right).

    ``match`` is a list of rules for every target that can adopt, or a table naming the
    rules per target (``{"propeller": ["tax_number"], "hipe": ["email", "name"]}``).
    """
    if match is None or match == [] or match == {}:
        return []
    where = f"flows.{flow}.match"
    if entity not in ADOPTING_ENTITIES:
        return [f"{where}: only customer flows can adopt existing target records"]
    if isinstance(match, list):
        per_target: dict[str, object] = {t: match for t in targets if t in ADOPTING_TARGETS}
    elif isinstance(match, dict):
        per_target = dict(match)
    else:
        return [f"{where}: a list of rules, or a table of them per target"]
    problems: list[str] = []
    for target, rules in per_target.items():
        if target not in targets:
            problems.append(f"{where}.{target}: {target} is not a target of this flow")
            continue
        if target not in ADOPTING_TARGETS:
            problems.append(f"{where}.{target}: {target} records cannot be adopted")
            continue
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            problems.append(f"{where}.{target}: a list of rule names")
            continue
        unknown = [r for r in rules if r not in RULES]
        if unknown:
            problems.append(
                f"{where}.{target}: unknown rule(s) {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(RULES)})"
            )
        if len(set(rules)) != len(rules):
            problems.append(f"{where}.{target}: a rule is listed twice")
    return problems


def match_rules(match: object, targets: list[str]) -> dict[str, tuple[str, ...]]:
    """Per target, its rules in order (a validated ``match`` setting; targets without
    rules left out)."""
    if isinstance(match, list):
        return {t: tuple(match) for t in targets if t in ADOPTING_TARGETS and match}
    if isinstance(match, dict):
        return {str(t): tuple(r) for t, r in match.items() if r}
    return {}
