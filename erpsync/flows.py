"""What erpsync can sync, and how each target's fields are filled: one table.

The settings refuse a flow this table does not support (:func:`flow_support_problems`) and a
mapping key its target would ignore (:func:`mapping_problems`); ``erpsync doctor`` shows the
effective field mapping of every flow and target from it (:func:`effective_mapping`); tests
hold the producers and sinks to it (a sink's ``handles()`` agrees with :data:`TARGETS`, the
fields it writes with :attr:`TargetSpec.fields`), so that configuration, documentation and
code cannot drift apart.

* :data:`SOURCES`: per (source system, entity) a producer reads, the source's field behind
  each canonical path;
* :data:`TARGETS`: per (entity, target) a sink writes, the target fields with the canonical
  path each takes, and the mapping keys (``fields``, ``custom_fields``) that target honours.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from erpsync.mapping import TargetMapping, check_path
from erpsync.models import Invoice, InvoiceLine


@dataclass(frozen=True)
class TargetField:
    """One field a sink writes: the target's name for it and the canonical path it takes."""

    target: str
    canonical: str
    #: the name a ``fields`` override uses for it (the sink's own); None: not overridable
    override: str | None = None


@dataclass(frozen=True)
class TargetSpec:
    """What a sink writes for one (entity, target) pair, and which mapping keys it honours."""

    fields: tuple[TargetField, ...]
    #: ``fields`` keys that set a target field the sink writes only when mapped:
    #: override name -> the target's name for it
    extra_fields: Mapping[str, str] = field(default_factory=dict)
    #: ``fields`` keys that hold a value, not a canonical path: name -> what it sets
    options: Mapping[str, str] = field(default_factory=dict)
    #: ``custom_fields`` honoured: what it fills (None: refused)
    custom_fields: str | None = None
    #: custom field keys with this prefix take a path of each invoice line
    line_prefix: str | None = None
    #: options whose value must be one of a few words: name -> the words
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def overridable(self) -> dict[str, str]:
        """``fields`` keys that take a canonical path: override name -> target field."""
        found = {f.override: f.target for f in self.fields if f.override is not None}
        found.update(self.extra_fields)
        return found

    def honoured(self) -> list[str]:
        """The mapping keys this target honours (for messages and docs)."""
        keys = []
        if self.overridable() or self.options:
            keys.append("fields")
        if self.custom_fields is not None:
            keys.append("custom_fields")
        return keys


#: (source system, entity) -> canonical path -> the source's own field (what producers read)
SOURCES: dict[tuple[str, str], dict[str, str]] = {
    ("onlineerp", "customer"): {
        "key": "NoClient",
        "name": "NomClient",
        "parent_key": "NoClientParent",
        "email": "Courriel",
        "phone": "Telephone",
        "tax_number": "NoTPS",
        "language": "Langue",
        "active": "EstActif",
        "address.line1": "Adresse.Ligne1",
        "address.city": "Adresse.Ville",
        "address.region": "Adresse.Province",
        "address.postal_code": "Adresse.CodePostal",
        "address.country": "Adresse.Pays",
        "addresses[].code": "invoice (Adresse), delivery:<AdressesLivraison[].CodeAdresse>",
        "addresses[].type": "invoice (Adresse), delivery (AdressesLivraison[])",
        "addresses[].line1": "Adresse.Ligne1, AdressesLivraison[].Ligne1",
        "addresses[].city": "Adresse.Ville, AdressesLivraison[].Ville",
        "addresses[].region": "Adresse.Province, AdressesLivraison[].Province",
        "addresses[].postal_code": "Adresse.CodePostal, AdressesLivraison[].CodePostal",
        "addresses[].country": "Adresse.Pays, AdressesLivraison[].Pays",
    },
    ("onlineerp", "product"): {
        "key": "NoProduit",
        "name": "Description",
        "price": "PrixVente",
        "currency": "Devise",
        "vat_rate": "CodeTaxe",
        "units": "Unite",
        "active": "EstActif",
        "group": "GroupeProduit.CodeGroupe",
    },
    ("propeller", "customer"): {
        "key": "id",
        "name": "name",
        "parent_key": "parent.id",
        "email": "email",
        "phone": "phone",
        "tax_number": "taxNumber",
        "language": "language",
    },
    ("atollon", "billing"): {
        "reference": "billingItems[].id (ATL-<activity>-<hash>)",
        "customer_key": "customerContact.externalId, else contact.externalId",
        "description": "activity.name",
        "date": "billingItems[].billingDate",
        "currency": "billingItems[].currency",
        "activity_id": "activity.id",
        "project_id": "project.id",
        "lines.product_key": "billingItems[].productExternalId",
        "lines.quantity": "billingItems[].quantity",
        "lines.unit_price": "billingItems[].unitPrice",
        "lines.description": "billingItems[].name",
        "lines.vat_rate": "billingItems[].vatValue",
    },
    ("onlineerp", "invoice"): {
        "key": "NoFacture",
        "number": "NoFacture",
        "reference": "Facture.Référence (ATL-…: the invoices erpsync made)",
        "state": "Statut",
        "customer_key": "Facture.InfoClientFacturerA.NoClient",
        "date": "Facture.DateFacture",
        "total": "TotalAvantTaxes",
        "total_taxes": "TotalTaxes",
        "total_with_taxes": "TotalAvecTaxes",
        "amount_paid": "MontantPaye",
        "balance": "SoldeDu",
    },
    ("onlineerp", "person"): {
        "key": "NoContact",
        "employer_key": "NoClient",
        "first_name": "Prenom",
        "last_name": "Nom",
        "email": "Courriel",
        "phone": "Telephone",
        "mobile": "Cellulaire",
        "job_title": "Titre",
        "employer_name": "NomClient of the customer NoClient",
        "active": "EstActif",
    },
}

#: per entity, the source whose keys carry no namespace (see :func:`erpsync.keys.record_key`)
HOME_SOURCES: dict[str, str] = {
    "customer": "onlineerp",
    "product": "onlineerp",
    "person": "onlineerp",
    "billing": "atollon",
    "invoice": "onlineerp",
}
#: the canonical fields that hold a record's key (namespaced with the record's source)
KEY_FIELDS = frozenset({"key", "parent_key", "employer_key"})

#: the streams that read a flow's ``source_fields`` into ``custom`` (the others ignore them)
READS_SOURCE_FIELDS: frozenset[tuple[str, str]] = frozenset(
    {("onlineerp", "customer"), ("onlineerp", "product")}
)

#: (entity, target) -> what the target's sink writes
TARGETS: dict[tuple[str, str], TargetSpec] = {
    ("customer", "propeller"): TargetSpec(
        fields=(
            TargetField("sourceId", "key"),
            TargetField("name", "name", "name"),
            TargetField("taxNumber", "tax_number", "tax_number"),
            TargetField("email", "email", "email"),
            TargetField("phone", "phone", "phone"),
            TargetField("parent.sourceId", "parent_key"),
            TargetField("attributes[inactive_attribute] = Y / N", "active"),
            TargetField("addresses[].code", "addresses[].code"),
            TargetField("addresses[].type", "addresses[].type"),
            TargetField("addresses[].street", "addresses[].line1"),
            TargetField("addresses[].city", "addresses[].city"),
            TargetField("addresses[].region", "addresses[].region"),
            TargetField("addresses[].postalCode", "addresses[].postal_code"),
            TargetField("addresses[].country", "addresses[].country"),
        ),
        extra_fields={
            "coc_number": "cocNumber",
            "debtor_id": "debtorId",
            "department": "department",
            "office": "office",
            "notes": "notes",
        },
    ),
    ("customer", "hipe"): TargetSpec(
        fields=(
            TargetField("externalId", "key"),
            TargetField("name", "name", "name"),
            TargetField("email", "email", "email"),
            TargetField("phone", "phone", "phone"),
            TargetField("vat", "tax_number", "vat"),
            TargetField("parentId", "parent_key"),
            TargetField("archived (DELETE / PATCH …/archived)", "active"),
            TargetField("addresses[].name", "addresses[].code"),
            TargetField("addresses[].address", "addresses[].line1"),
            TargetField("addresses[].city", "addresses[].city"),
            TargetField("addresses[].state", "addresses[].region"),
            TargetField("addresses[].zipCode", "addresses[].postal_code"),
            TargetField("addresses[].country", "addresses[].country"),
        ),
        extra_fields={"website": "website"},
        custom_fields="HIPE `customFields`",
    ),
    ("customer", "atollon"): TargetSpec(
        fields=(
            TargetField("externalId[].id", "key"),
            TargetField("company.companyName", "name"),
            TargetField("company.companyCompanyRelation[].companyExternalId[].id", "parent_key"),
            TargetField("contacts.email[].contact", "email"),
            TargetField("contacts.phone[].contact", "phone"),
            TargetField("vatNo", "tax_number"),
            TargetField("address[].street", "address.line1"),
            TargetField("address[].city", "address.city"),
            TargetField("address[].region", "address.region"),
            TargetField("address[].zip", "address.postal_code"),
            TargetField("address[].country", "address.country"),
            TargetField('contactGroup[].name = Inactive (deactivation = "group" only)', "active"),
        ),
    ),
    ("product", "atollon"): TargetSpec(
        fields=(
            TargetField("externalId[].id", "key"),
            TargetField("refId", "key"),
            TargetField("name", "name"),
            TargetField("description", "name"),
            TargetField("unitPrice", "price"),
            TargetField("unitPriceCurrencyName", "currency", "currency"),
            TargetField("vatRateName", "vat_rate", "vat_rate"),
            TargetField("unitsName", "units", "units"),
            TargetField("statusName", "active"),
        ),
    ),
    ("person", "hipe"): TargetSpec(
        fields=(
            TargetField("externalId", "key"),
            TargetField("firstName", "first_name"),
            TargetField("lastName", "last_name"),
            TargetField("email", "email"),
            TargetField("phoneNumber", "phone"),
            TargetField("mobilePhone", "mobile"),
            TargetField("job", "job_title"),
            TargetField("collaborationIds[] (the employer's HIPE company)", "employer_key"),
            TargetField("archived (DELETE / GET …/unarchived)", "active"),
        ),
    ),
    ("person", "atollon"): TargetSpec(
        fields=(
            TargetField("externalId[].id (system <erp_system>-contact)", "key"),
            TargetField("person.firstName", "first_name"),
            TargetField("person.lastName", "last_name"),
            TargetField("person.companyPersonRelation[].companyExternalId[].id", "employer_key"),
            TargetField("person.companyPersonRelation[].companyName", "employer_name"),
            TargetField("person.companyPersonRelation[].positionDesc", "job_title"),
            TargetField("contacts.email[].contact", "email"),
            TargetField("contacts.phone[].contact", "phone"),
            TargetField("contacts.mobile[].contact", "mobile"),
            TargetField('contactGroup[].name = Inactive (deactivation = "group" only)', "active"),
        ),
    ),
    ("billing", "onlineerp"): TargetSpec(
        fields=(
            TargetField("Référence", "reference"),
            TargetField("Description", "description"),
            TargetField("DateFacture", "date"),
            TargetField("InfoClientFacturerA.NoClient", "customer_key"),
            TargetField("LigneFacture[].strNoProduit", "lines.product_key"),
            TargetField("LigneFacture[].QteFacture", "lines.quantity"),
            TargetField("LigneFacture[].PrixUnitaire", "lines.unit_price"),
            TargetField("LigneFacture[].DescriptionLigne", "lines.description"),
        ),
        options={
            "activity_status": "Atollon status set on the activity once invoiced",
            "project_status": "Atollon status set on the project once invoiced",
            "time_sheets": "time-sheet items on the activity's invoice (together, the default) "
            "or on one of their own (apart)",
        },
        choices={"time_sheets": ("together", "apart")},
        custom_fields="ERP invoice field ← invoice path, `LigneFacture.<name>` ← line path",
        line_prefix="LigneFacture.",
    ),
    ("invoice", "atollon"): TargetSpec(
        fields=(TargetField("stateName", "state"),),
        options={
            "open": "Atollon invoice state of an open ERP invoice (default Issued)",
            "partly_paid": "Atollon invoice state of a partly paid one (default Pending)",
            "paid": "Atollon invoice state of a paid one (default Paid)",
            "cancelled": "Atollon invoice state of a cancelled one (default Cancelled)",
        },
    ),
}


def _honoured_text(target: str, spec: TargetSpec) -> str:
    """The mapping keys one target honours, in words (the README's table)."""
    parts: list[str] = []
    names = [f"`{n}`" for n in (f.override for f in spec.fields) if n is not None]
    if spec.extra_fields:
        extra = ", ".join(f"`{n}`" for n in spec.extra_fields)
        names.append(f"and {extra}, written only when mapped")
    options = [
        f"`{n}` ({' / '.join(spec.choices[n])})" if n in spec.choices else f"`{n}`"
        for n in spec.options
    ]
    if names or options:
        parts.append(f"`fields` ({', '.join(names + options)})")
    if spec.custom_fields is not None:
        parts.append(f"`custom_fields` ({spec.custom_fields})")
    return f"{target}: {' and '.join(parts) if parts else 'none'}"


def markdown() -> str:
    """The supported flows and the mapping keys of each target, as a Markdown table."""
    lines = [
        "| entity | sources | targets | mapping keys each target honours |",
        "|---|---|---|---|",
    ]
    entities = dict.fromkeys(entity for _, entity in SOURCES)
    entities.update(dict.fromkeys(entity for entity, _ in TARGETS))
    for entity in entities:
        sources = [f"`{s}`" for s, e in SOURCES if e == entity]
        targets = [(t, spec) for (e, t), spec in TARGETS.items() if e == entity]
        honoured = ". ".join(_honoured_text(t, spec) for t, spec in targets)
        lines.append(
            f"| `{entity}` | {', '.join(sources) or '-'} | "
            f"{', '.join(f'`{t}`' for t, _ in targets) or '-'} | {honoured or '-'} |"
        )
    return "\n".join(lines) + "\n"


def supported_pairs() -> str:
    """``customer -> propeller/hipe/atollon, …``: the supported (entity, target) pairs."""
    by_entity: dict[str, list[str]] = {}
    for entity, target in TARGETS:
        by_entity.setdefault(entity, []).append(target)
    return ", ".join(f"{e} -> {'/'.join(t)}" for e, t in by_entity.items())


def supported_sources() -> str:
    """``customer <- onlineerp/propeller, …``: the supported (entity, source) pairs."""
    by_entity: dict[str, list[str]] = {}
    for source, entity in SOURCES:
        by_entity.setdefault(entity, []).append(source)
    return ", ".join(f"{e} <- {'/'.join(s)}" for e, s in by_entity.items())


def flow_support_problems(entity: str, source: str, targets: list[str]) -> list[tuple[str, str]]:
    """What erpsync cannot do of a flow: ``(setting, problem)`` pairs, none when supported.

    Call it with a known entity and known system names only (the settings report the
    others on their own).
    """
    problems: list[tuple[str, str]] = []
    if (source, entity) not in SOURCES:
        problems.append(
            (
                "source",
                f"erpsync reads no {entity} from {source!r} "
                f"(supported sources: {supported_sources()})",
            )
        )
    for target in targets:
        if target == source:
            problems.append(
                ("targets", f"{target!r} is the flow's source: a flow cannot write back to it")
            )
        elif (entity, target) not in TARGETS:
            problems.append(
                (
                    "targets",
                    f"no sink writes {entity} to {target!r} (supported pairs: {supported_pairs()})",
                )
            )
    return problems


def source_fields_problems(
    source: str, entity: str, source_fields: Mapping[str, str]
) -> list[tuple[str, str]]:
    """``source_fields`` a flow's stream would ignore: ``(setting, problem)`` pairs."""
    if not source_fields or (source, entity) in READS_SOURCE_FIELDS:
        return []
    readers = ", ".join(f"{e} from {s}" for s, e in sorted(READS_SOURCE_FIELDS))
    return [
        (
            "source_fields",
            f"erpsync reads no extra fields of {entity} from {source!r} (it would ignore "
            f"them: source_fields are read for {readers})",
        )
    ]


def unfilled_custom_problem(path: str, source_fields: Mapping[str, str]) -> str | None:
    """A ``custom.<name>`` path no ``source_fields`` entry fills (always empty), or None."""
    head, _, name = path.partition(".")
    if head != "custom" or not name or name.split(".")[0] in source_fields:
        return None
    return f"{path!r} is never filled: the flow's source_fields has no {name.split('.')[0]!r}"


def _invoice_path_problem(path: str, *, line: bool) -> str | None:
    model = InvoiceLine if line else Invoice
    head = path.split(".")[0]
    if head in model.model_fields and "." not in path:
        return None
    names = ", ".join(sorted(model.model_fields))
    what = "an invoice line" if line else "an invoice"
    return f"{path!r} is not a field of {what} (fields: {names})"


def mapping_problems(
    entity: str,
    target: str,
    mapping: TargetMapping,
    source_fields: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Mapping keys ``target`` would ignore or cannot take: ``(key, problem)`` pairs.

    With ``source_fields`` (the flow's), a ``custom.<name>`` path none of them fills is a
    problem too: the target would always get nothing.

    ``key`` is relative to ``flows.<name>.mapping.<target>`` (``custom_fields``,
    ``fields.email``…). Pairs :data:`TARGETS` does not know give nothing (reported by
    :func:`flow_support_problems`).
    """
    spec = TARGETS.get((entity, target))
    if spec is None:
        return []
    keys = " and ".join(spec.honoured())
    honoured = f"{target} honours only {keys}" if keys else f"{target} honours no mapping key"
    problems = _custom_field_problems(entity, target, spec, mapping, source_fields, honoured)
    for name, value in mapping.fields.items():
        problem = _field_problem(entity, target, spec, name, value, source_fields, honoured)
        if problem:
            problems.append((f"fields.{name}", problem))
    return problems


def _custom_field_problems(
    entity: str,
    target: str,
    spec: TargetSpec,
    mapping: TargetMapping,
    source_fields: Mapping[str, str] | None,
    honoured: str,
) -> list[tuple[str, str]]:
    """The problems of ``mapping.custom_fields``: not taken at all, or a path that cannot be."""
    if mapping.custom_fields and spec.custom_fields is None:
        return [
            (
                "custom_fields",
                f"{target} takes no custom fields for {entity} "
                f"(erpsync would ignore them: {honoured})",
            )
        ]
    problems: list[tuple[str, str]] = []
    for name, path in mapping.custom_fields.items():
        problem = _path_problem(entity, spec, path, line=_is_line(spec, name))
        if problem is None and source_fields is not None:
            problem = unfilled_custom_problem(path, source_fields)
        if problem:
            problems.append((f"custom_fields.{name}", problem))
    return problems


def _field_problem(
    entity: str,
    target: str,
    spec: TargetSpec,
    name: str,
    value: str,
    source_fields: Mapping[str, str] | None,
    honoured: str,
) -> str | None:
    """What is wrong with ``fields.<name> = value``: an option, an overridable field, or none."""
    overridable = spec.overridable()
    if name in spec.options:
        words = spec.choices.get(name)
        if not value.strip():
            return f"names {spec.options[name]}: not empty"
        if words is not None and value not in words:
            return f"{value!r} is not one of {', '.join(words)}"
        return None
    if name in overridable:
        problem = _path_problem(entity, spec, value, line=False)
        if problem is None and source_fields is not None:
            problem = unfilled_custom_problem(value, source_fields)
        return problem
    if not overridable and not spec.options:
        return f"{target} takes no field mapping for {entity} (erpsync would ignore it: {honoured})"
    names = ", ".join([*overridable, *spec.options])
    return f"{target} has no {entity} field {name!r} a mapping can set (one of: {names})"


def _is_line(spec: TargetSpec, name: str) -> bool:
    return spec.line_prefix is not None and name.startswith(spec.line_prefix)


def _path_problem(entity: str, spec: TargetSpec, path: str, *, line: bool) -> str | None:
    if spec.line_prefix is not None:  # invoices: paths into the invoice or its lines
        return _invoice_path_problem(path, line=line)
    return check_path(entity, path)


@dataclass(frozen=True)
class Route:
    """One line of a flow's effective mapping: source field -> canonical -> target field."""

    source: str | None
    canonical: str
    target: str
    origin: str  # "default", "fields" (an override), "custom_fields", "option"

    def as_dict(self) -> dict[str, str | None]:
        return {
            "source": self.source,
            "canonical": self.canonical,
            "target": self.target,
            "origin": self.origin,
        }


def _source_field(
    source: str, entity: str, canonical: str, source_fields: Mapping[str, str]
) -> str | None:
    fields = SOURCES.get((source, entity), {})
    if canonical.startswith("custom."):
        return source_fields.get(canonical.removeprefix("custom."))
    found = fields.get(canonical)
    if found is not None and canonical in KEY_FIELDS and HOME_SOURCES.get(entity) != source:
        return f"{found} (as {source}:<{found}>)"
    return found


def effective_mapping(
    source: str,
    entity: str,
    target: str,
    mapping: TargetMapping,
    source_fields: Mapping[str, str],
) -> list[Route]:
    """Every field the target gets for this flow, where from, after the flow's mapping."""
    spec = TARGETS.get((entity, target))
    if spec is None:
        return []
    routes: list[Route] = []
    overridden = {name: path for name, path in mapping.fields.items() if name not in spec.options}
    for f in spec.fields:
        path, origin = f.canonical, "default"
        if f.override is not None and f.override in overridden:
            path, origin = overridden.pop(f.override), "fields"
        routes.append(
            Route(_source_field(source, entity, path, source_fields), path, f.target, origin)
        )
    for name, path in overridden.items():  # extra fields, written only when mapped
        target_field = spec.extra_fields.get(name, name)
        routes.append(
            Route(_source_field(source, entity, path, source_fields), path, target_field, "fields")
        )
    for name, value in mapping.fields.items():
        if name in spec.options:
            routes.append(Route(None, repr(value), f"{name} ({spec.options[name]})", "option"))
    prefix = "customFields." if target == "hipe" else ""
    for name, path in mapping.custom_fields.items():
        routes.append(
            Route(
                _source_field(source, entity, path, source_fields),
                path,
                f"{prefix}{name}",
                "custom_fields",
            )
        )
    return routes
