"""Contacts (persons and companies), their contact folders and contact groups.

Matching follows the crawler page and the sandbox conventions: a contact is found by its
external id (``system`` + ``id``, unique per system) first; otherwise a company contact by
its name, a person contact by e-mail or mobile, in both cases only among contacts that have
no external id in the request's systems (a contact that already has another id in that
system is another record of that system); otherwise it is created. Every lookup is a dict
access, so thousands of upserts stay cheap.

A request is validated and every reference resolved before anything changes, so a FAIL
leaves no half-applied contact, group or folder behind.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from simulators._pages import InsertionOrdered
from simulators.atollon._request import (
    ExternalId,
    FailError,
    IdSequence,
    describe,
    external_id_json,
    external_ids,
    filled,
    now,
    object_list,
    optional_object,
    require_object,
    text,
)

#: the "useful" contact folder categories (FPATypeCategory) the crawler page lists, and the
#: folder type each one creates; the page's own examples use others ("anyFolderCategory"),
#: so any other non-empty category is accepted too (docs/sandbox-conventions.md)
FOLDER_CATEGORIES: dict[str, str] = {
    "com.atollon.project.fpatypecategory.client": "Client",
    "com.atollon.project.fpatypecategory.supplier": "Supplier",
    "com.atollon.leads.fpatypecategory.lead": "Lead",
    "com.atollon.project.fpatypecategory.partner": "Partner",
}
#: folder type names (``typeName`` of the folder request) to categories; "Klient" is the
#: Czech name the page's example uses
FOLDER_TYPE_NAMES: dict[str, str] = {
    "client": "com.atollon.project.fpatypecategory.client",
    "klient": "com.atollon.project.fpatypecategory.client",
    "supplier": "com.atollon.project.fpatypecategory.supplier",
    "lead": "com.atollon.leads.fpatypecategory.lead",
    "partner": "com.atollon.project.fpatypecategory.partner",
}
CONTACT_CHANNELS = ("email", "phone", "mobile", "web")
ADDRESS_FIELDS = ("street", "city", "zip", "region", "country", "addressType")
PERSON_FIELDS = ("firstName", "lastName", "prefixTitle", "postfixTitle")
RELATED_NOT_FOUND = "Related contact not found"

ContactKind = Literal["person", "company"]
#: how a company request whose external id is unknown is matched by its name: among the
#: companies without an id of the request's systems (the sandbox's default), or with any
#: company of that name (the page's words read alone: "company name matches some record")
CompanyMatch = Literal["unclaimed", "name"]


def name_key(name: str) -> str:
    """Names match ignoring case and repeated blanks."""
    return " ".join(name.split()).casefold()


def phone_key(phone: str) -> str:
    """Phone numbers match on their digits (and a leading plus)."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    return ("+" if phone.strip().startswith("+") else "") + digits


def category_of(value: str, where: str) -> str:
    """A contact folder category: any non-empty string (the page lists "some useful" ones
    and its own examples use others, such as ``anyFolderCategory``)."""
    category = value.strip()
    if not category:
        raise FailError(f"Invalid request: an empty contact folder category ({where})")
    return category


def category_of_type(value: str) -> str:
    """A folder type name (Client, Klient, Supplier, Lead, Partner) or a category string.

    A name the table does not know is its own category (an instance configures its own
    folder types), so a folder asked for by that name is found again by it.
    """
    category = FOLDER_TYPE_NAMES.get(value.strip().casefold())
    return category if category is not None else category_of(value, "typeName")


def type_name_of(category: str) -> str:
    """The folder type a category creates: the page's name for the listed ones, else the
    category's last dotted part (``com.example.fpatypecategory.customer`` → ``customer``)."""
    return FOLDER_CATEGORIES.get(category) or category.rsplit(".", 1)[-1]


@dataclass
class Folder:
    """A contact folder: the context (client, supplier, lead, partner) of a contact."""

    folder_id: str
    contact_id: str
    category: str
    name: str
    ref_id: str | None = None
    parent_folder_id: str | None = None
    responsible_users: list[dict[str, Any]] = field(default_factory=list)
    form: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=now)
    modified: str = field(default_factory=now)

    def to_json(self) -> dict[str, Any]:
        """The folder as records show it."""
        return {
            "folderId": self.folder_id,
            "contactId": self.contact_id,
            "category": self.category,
            "typeName": type_name_of(self.category),
            "name": self.name,
            "refId": self.ref_id,
            "parentFolderId": self.parent_folder_id,
            "responsibleUser": [dict(u) for u in self.responsible_users],
            "form": dict(self.form),
            "created": self.created,
            "modified": self.modified,
        }


@dataclass
class Contact:
    """A stored contact (person or company)."""

    contact_id: str
    kind: ContactKind
    person: dict[str, str | None] | None = None
    company_name: str | None = None
    #: company contacts: [{companyId, companyExternalId, relationType}]
    company_relations: list[dict[str, Any]] = field(default_factory=list)
    #: person contacts: [{companyId, companyExternalId, companyName, positionDesc, departmentName}]
    employers: list[dict[str, Any]] = field(default_factory=list)
    addresses: list[dict[str, str | None]] = field(default_factory=list)
    channels: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    scalars: dict[str, str | None] = field(default_factory=dict)
    industries: list[dict[str, str | None]] = field(default_factory=list)
    group_names: list[str] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)
    #: system -> id, in the order they were given
    external: dict[str, str] = field(default_factory=dict)
    #: further ids of a system the contact already has an id of: what a company matched by
    #: its name alone collects (``company_match="name"``)
    merged: list[ExternalId] = field(default_factory=list)
    created: str = field(default_factory=now)
    modified: str = field(default_factory=now)

    @property
    def display_name(self) -> str:
        """The name Atollon shows: the company name, or "Surname Firstname" for a person."""
        if self.kind == "company":
            return self.company_name or ""
        person = self.person or {}
        return " ".join(p for p in (person.get("lastName"), person.get("firstName")) if p)

    def external_ids(self) -> list[ExternalId]:
        """The contact's external ids as (system, id) pairs."""
        return [*self.external.items(), *self.merged]

    def emails(self) -> list[str]:
        """Every e-mail address stored with the contact."""
        return [entry["contact"] for entry in self.channels.get("email", [])]

    def mobiles(self) -> list[str]:
        """Every mobile number stored with the contact."""
        return [entry["contact"] for entry in self.channels.get("mobile", [])]


@dataclass
class EmployerPlan:
    """One resolved ``companyPersonRelation``: an existing company, or one to create."""

    company: Contact | None
    #: the name of the company to find again or create when ``company`` is None
    new_company_name: str
    external: list[ExternalId]
    company_name: str | None
    position: str | None
    department: str | None


@dataclass
class FolderPlan:
    """One requested contact folder, its parent resolved."""

    category: str
    ref_id: str | None
    ref_id_given: bool
    parent: Folder | None
    responsible_users: list[dict[str, Any]] | None


@dataclass
class ContactRequest:
    """A validated contact request; ``None`` means "not in the request, keep what is stored".

    A list that is present (addresses, a channel of ``contacts``, the company relations)
    states the contact's whole list and replaces the stored one, ``[]`` empties it; the
    contact groups are the exception the crawler page documents: they are assigned.
    """

    kind: ContactKind
    person: dict[str, str | None] | None
    company_name: str | None
    company_relations: list[tuple[list[ExternalId], str | None]] | None
    employer_relations: list[dict[str, Any]] | None
    addresses: list[dict[str, str | None]] | None
    channels: dict[str, list[dict[str, str]]] | None
    scalars: dict[str, str | None]
    industries: list[dict[str, str | None]] | None
    groups: list[tuple[str, str | None]] | None
    folders: list[dict[str, Any]]
    external: list[ExternalId]


class ContactStore:
    """Every contact, folder and contact group of the instance, with O(1) indexes."""

    def __init__(self, ids: IdSequence, company_match: CompanyMatch = "unclaimed") -> None:
        self.ids = ids
        self.company_match: CompanyMatch = company_match
        self.contacts: InsertionOrdered[str, Contact] = InsertionOrdered()
        self.by_external: dict[ExternalId, str] = {}
        self.companies_by_name: dict[str, list[str]] = {}
        self.persons_by_email: dict[str, list[str]] = {}
        self.persons_by_mobile: dict[str, list[str]] = {}
        self.folders: dict[str, Folder] = {}
        self.folders_by_ref: dict[str, str] = {}
        #: name key -> {"groupId", "name", "description"}
        self.groups: dict[str, dict[str, str | None]] = {}

    def reset(self) -> None:
        """Forget every contact, folder and group."""
        for index in (
            self.contacts,
            self.by_external,
            self.companies_by_name,
            self.persons_by_email,
            self.persons_by_mobile,
            self.folders,
            self.folders_by_ref,
            self.groups,
        ):
            index.clear()

    # ----------------------------------------------------------------- lookups

    def find_by_external(self, ids: list[ExternalId]) -> Contact | None:
        """The one contact holding any of ``ids``; a FAIL if they name different contacts."""
        owners = {self.by_external[pair] for pair in ids if pair in self.by_external}
        if len(owners) > 1:
            raise FailError(f"externalId conflict: {describe(ids)} belong to different contacts")
        return self.contacts[owners.pop()] if owners else None

    def require_by_external(self, ids: list[ExternalId], prefix: str) -> Contact:
        """The contact holding ``ids``, or a FAIL starting with ``prefix``."""
        contact = self.find_by_external(ids)
        if contact is None:
            raise FailError(f"{prefix}: {describe(ids)}")
        return contact

    def company_by_name(self, name: str, systems: set[str] | None = None) -> Contact | None:
        """The oldest company contact called ``name`` without an id in ``systems``."""
        for contact_id in self.companies_by_name.get(name_key(name), []):
            contact = self.contacts[contact_id]
            if not systems or not systems & contact.external.keys():
                return contact
        return None

    def _person_by_channels(self, request: ContactRequest, systems: set[str]) -> Contact | None:
        channels = request.channels or {}
        candidates: list[str] = []
        for entry in channels.get("email", []):
            candidates += self.persons_by_email.get(entry["contact"].casefold(), [])
        for entry in channels.get("mobile", []):
            candidates += self.persons_by_mobile.get(phone_key(entry["contact"]), [])
        for contact_id in candidates:
            contact = self.contacts[contact_id]
            if not systems & contact.external.keys():
                return contact
        return None

    def folder_of(
        self, contact: Contact, category: str | None, ref_id: str | None = None
    ) -> Folder | None:
        """The contact's folder with ``refId`` (when given) or ``category``."""
        if ref_id is not None:
            for folder in contact.folders:
                if folder.ref_id == ref_id:
                    return folder
        if category is not None:
            for folder in contact.folders:
                if folder.category == category and (ref_id is None or folder.ref_id is None):
                    return folder
        return None

    # ------------------------------------------------------------- the request

    def parse(self, body: dict[str, Any]) -> ContactRequest:
        """Validate a contact request without touching the store."""
        person_body = optional_object(body, "person", "")
        company_body = optional_object(body, "company", "")
        person = None
        if person_body is not None:
            person = {key: filled(person_body, key, "person") for key in PERSON_FIELDS}
        is_person = person is not None and bool(person["firstName"] or person["lastName"])
        company_name = filled(company_body, "companyName", "company") if company_body else None

        kind: ContactKind = "person" if is_person else "company"
        if kind == "company" and company_name is None:
            raise FailError(
                "Either company.companyName or person.lastName is required "
                "(a filled person makes a person contact, otherwise a company contact)"
            )
        if kind == "person" and person is not None and person["lastName"] is None:
            raise FailError("person.lastName is required for a person contact")

        company_relations = None
        if kind == "company" and company_body is not None:
            relations = object_list(company_body, "companyCompanyRelation", "company")
            if relations is not None:
                company_relations = []
                for i, relation in enumerate(relations):
                    where = f"company.companyCompanyRelation[{i}]"
                    ids = external_ids(relation, "companyExternalId", where) or []
                    if not ids:
                        raise FailError(f"Invalid request: {where}.companyExternalId is required")
                    company_relations.append((ids, filled(relation, "relationType", where)))

        employer_relations: list[dict[str, Any]] | None = None
        if kind == "person" and person_body is not None:
            relations = object_list(person_body, "companyPersonRelation", "person")
            if relations is not None:
                employer_relations = []
                for i, relation in enumerate(relations):
                    where = f"person.companyPersonRelation[{i}]"
                    ids = external_ids(relation, "companyExternalId", where) or []
                    name = filled(relation, "companyName", where)
                    if not ids and name is None:
                        raise FailError(
                            f"Invalid request: {where} needs companyExternalId or companyName"
                        )
                    employer_relations.append(
                        {
                            "external": ids,
                            "companyName": name,
                            "positionDesc": filled(relation, "positionDesc", where),
                            "departmentName": filled(relation, "departmentName", where),
                        }
                    )
            if company_name is not None:
                # "the person is representative of the company": bind it by name
                employer_relations = employer_relations or []
                if not any(
                    r["companyName"] and name_key(r["companyName"]) == name_key(company_name)
                    for r in employer_relations
                ):
                    employer_relations.append(
                        {
                            "external": [],
                            "companyName": company_name,
                            "positionDesc": None,
                            "departmentName": None,
                        }
                    )

        addresses = None
        address_list = object_list(body, "address", "")
        if address_list is not None:
            addresses = [
                {key: filled(a, key, f"address[{i}]") for key in ADDRESS_FIELDS}
                for i, a in enumerate(address_list)
            ]

        channels: dict[str, list[dict[str, str]]] | None = None
        contacts_body = optional_object(body, "contacts", "")
        if contacts_body is not None:
            channels = {}
            for channel in CONTACT_CHANNELS:
                entries = object_list(contacts_body, channel, "contacts")
                if entries is None:
                    continue
                channels[channel] = []
                for i, entry in enumerate(entries):
                    where = f"contacts.{channel}[{i}]"
                    value = filled(entry, "contact", where)
                    if value is not None:
                        channels[channel].append(
                            {
                                "contact": value,
                                "contactInfoTypeName": text(entry, "contactInfoTypeName", where)
                                or "",
                            }
                        )

        # a scalar present with a value sets it; present but "" or null empties it
        scalars: dict[str, str | None] = {
            key: filled(body, key)
            for key in ("description", "regNo", "vatNo", "trackingCode", "source")
            if key in body
        }

        industries = None
        industry_list = object_list(body, "industries", "")
        if industry_list is not None:
            industries = [
                {
                    "name": filled(item, "name", f"industries[{i}]"),
                    "description": text(item, "description", f"industries[{i}]"),
                }
                for i, item in enumerate(industry_list)
            ]

        groups = None
        group_list = object_list(body, "contactGroup", "")
        if group_list is not None:
            groups = []
            for i, group in enumerate(group_list):
                name = filled(group, "name", f"contactGroup[{i}]")
                if name is None:
                    raise FailError(f"Invalid request: contactGroup[{i}].name is required")
                groups.append((name, text(group, "description", f"contactGroup[{i}]")))

        folders = []
        for i, folder in enumerate(object_list(body, "contactFolder", "") or []):
            where = f"contactFolder[{i}]"
            category = filled(folder, "category", where)
            if category is None:
                continue  # "If contactFolderCategory is not filled-in, the folder is not created"
            folders.append(
                {
                    "category": category_of(category, where),
                    "refId": filled(folder, "refId", where),
                    "refIdGiven": "refId" in folder,
                    "parentFolder": optional_object(folder, "parentFolder", where),
                    "responsibleUser": object_list(folder, "responsibleUser", where),
                    "where": where,
                }
            )

        return ContactRequest(
            kind=kind,
            person=person if kind == "person" else None,
            company_name=company_name if kind == "company" else None,
            company_relations=company_relations,
            employer_relations=employer_relations,
            addresses=addresses,
            channels=channels,
            scalars=scalars,
            industries=industries,
            groups=groups,
            folders=folders,
            external=external_ids(body, "externalId", "") or [],
        )

    def match(self, request: ContactRequest) -> Contact | None:
        """The stored contact this request updates, or None to create one."""
        contact = self.find_by_external(request.external)
        if contact is not None:
            if contact.kind != request.kind:
                raise FailError(
                    f"Contact type mismatch: {describe(request.external)} is a "
                    f"{contact.kind} contact, the request describes a {request.kind}"
                )
            return contact
        systems = {system for system, _ in request.external}
        if request.kind == "company" and request.company_name is not None:
            if self.company_match == "name":
                return self.company_by_name(request.company_name)
            return self.company_by_name(request.company_name, systems)
        return self._person_by_channels(request, systems)

    def _related_company(self, ids: list[ExternalId], contact: Contact | None) -> Contact:
        related = self.require_by_external(ids, RELATED_NOT_FOUND)
        if contact is not None and related is contact:
            raise FailError(f"Invalid request: contact {describe(ids)} cannot be related to itself")
        if related.kind != "company":
            raise FailError(f"Related contact is not a company: {describe(ids)}")
        return related

    def _resolve_parent_folder(self, spec: dict[str, Any], where: str) -> Folder | None:
        parent_body = spec["parentFolder"]
        if parent_body is None:
            return None
        where = f"{where}.parentFolder"
        ids = external_ids(parent_body, "contactExternalId", where) or []
        ref_id = filled(parent_body, "refId", where)
        raw_category = filled(parent_body, "category", where)
        category = category_of(raw_category, where) if raw_category else None
        if ids:
            owner = self.require_by_external(ids, RELATED_NOT_FOUND)
            folder = self.folder_of(owner, category, ref_id)
            if folder is None and category is None and ref_id is None and owner.folders:
                folder = owner.folders[0]
            if folder is None:
                raise FailError(
                    f"Parent folder not found: contact {describe(ids)} has no folder "
                    f"{ref_id or category or ''}".rstrip()
                )
            return folder
        if ref_id is not None:
            folder_id = self.folders_by_ref.get(ref_id)
            if folder_id is None:
                raise FailError(f"Parent folder not found: refId {ref_id}")
            return self.folders[folder_id]
        return None

    def add_handmade(self, body: dict[str, Any]) -> dict[str, Any]:
        """A contact typed in Atollon's interface: always a new one, even when a contact
        of that name exists (people make such twins; the crawler would find the first)."""
        return self._apply(self.parse(body), None, None, None, [])

    def upsert(self, body: Any) -> dict[str, Any]:
        """``POST /crab/crawler/contact``: create or update one contact."""
        request = self.parse(require_object(body, "the request body"))
        contact = self.match(request)

        relations: list[dict[str, Any]] | None = None
        if request.company_relations is not None:
            relations = []
            for ids, relation_type in request.company_relations:
                related = self._related_company(ids, contact)
                relations.append(
                    {
                        "companyId": related.contact_id,
                        "companyExternalId": external_id_json(ids),
                        "relationType": relation_type,
                    }
                )

        employers: list[EmployerPlan] | None = None
        if request.employer_relations is not None:
            employers = []
            for relation in request.employer_relations:
                ids = relation["external"]
                name = relation["companyName"]
                company = None
                if ids and (name is None or self.find_by_external(ids) is not None):
                    # "if company oldId is found …, make binding, otherwise if companyName is
                    # filled-in …, company based on it's name or create new company contact"
                    company = self._related_company(ids, contact)
                if company is None and name is not None:
                    company = self.company_by_name(name)
                employers.append(
                    EmployerPlan(
                        company=company,
                        new_company_name=name or "",
                        external=ids,
                        company_name=name,
                        position=relation["positionDesc"],
                        department=relation["departmentName"],
                    )
                )

        folder_plans = [
            FolderPlan(
                category=spec["category"],
                ref_id=spec["refId"],
                ref_id_given=spec["refIdGiven"],
                parent=self._resolve_parent_folder(spec, spec["where"]),
                responsible_users=spec["responsibleUser"],
            )
            for spec in request.folders
        ]

        # Everything is resolved: from here on nothing fails.
        return self._apply(request, contact, relations, employers, folder_plans)

    def _apply(
        self,
        request: ContactRequest,
        contact: Contact | None,
        relations: list[dict[str, Any]] | None,
        employers: list[EmployerPlan] | None,
        folder_plans: list[FolderPlan],
    ) -> dict[str, Any]:
        if contact is None:
            contact = Contact(contact_id=self.ids.next(), kind=request.kind)
            self.contacts[contact.contact_id] = contact
        else:
            self._unindex(contact)
            contact.modified = now()

        if request.person is not None:
            contact.person = dict(request.person)
        if request.company_name is not None:
            contact.company_name = request.company_name
        if relations is not None:
            contact.company_relations = relations
        if employers is not None:
            contact.employers = [self._bind_employer(plan) for plan in employers]
        if request.addresses is not None:
            contact.addresses = request.addresses
        if request.channels is not None:
            contact.channels.update(request.channels)
        contact.scalars.update(request.scalars)
        if request.industries is not None:
            contact.industries = request.industries
        # "Assign the contact to the group": groups are added, never taken away (an empty
        # or omitted list changes nothing)
        if request.groups is not None:
            for name, description in request.groups:
                group = self._group(name, description)
                if group["name"] not in contact.group_names:
                    contact.group_names.append(str(group["name"]))
        for system, ident in request.external:
            old = contact.external.get(system)
            if old is not None and old != ident and self.company_match == "name":
                # matched by its name alone: the contact now stands for both records
                if (system, ident) not in contact.merged:
                    contact.merged.append((system, ident))
                continue
            if old is not None and old != ident:
                self.by_external.pop((system, old), None)
            contact.external[system] = ident

        requested: list[Folder] = []
        for plan in folder_plans:
            requested.append(self._ensure_folder(contact, plan))
        for folder in contact.folders:
            folder.name = contact.display_name
        self._index(contact)

        folder_id = (
            requested[0].folder_id
            if requested
            else (contact.folders[0].folder_id if contact.folders else None)
        )
        return {
            "result": "SUCCESS",
            "contactId": contact.contact_id,
            "folderId": folder_id,
            "contact": {"externalId": external_id_json(contact.external_ids())},
        }

    def _bind_employer(self, plan: EmployerPlan) -> dict[str, Any]:
        company = plan.company
        if company is None:
            company = self.company_by_name(plan.new_company_name)
            if company is None:  # create the employer once, even when named twice
                company = Contact(
                    contact_id=self.ids.next(), kind="company", company_name=plan.new_company_name
                )
                self.contacts[company.contact_id] = company
                self._index(company)
        return {
            "companyId": company.contact_id,
            "companyExternalId": external_id_json(plan.external),
            "companyName": company.company_name,
            "positionDesc": plan.position,
            "departmentName": plan.department,
        }

    def _group(self, name: str, description: str | None) -> dict[str, str | None]:
        """The contact group called ``name``, created when missing."""
        key = name_key(name)
        group = self.groups.get(key)
        if group is None:
            group = {"groupId": self.ids.next(), "name": name, "description": description}
            self.groups[key] = group
        return group

    def _ensure_folder(self, contact: Contact, plan: FolderPlan) -> Folder:
        folder = self.folder_of(contact, plan.category, plan.ref_id)
        if folder is None:
            folder = self.new_folder(contact, plan.category, plan.ref_id)
        else:
            folder.modified = now()
            if plan.ref_id_given:
                self.set_folder_ref(folder, plan.ref_id)
        if plan.parent is not None:
            folder.parent_folder_id = plan.parent.folder_id
        if plan.responsible_users is not None:
            folder.responsible_users = [dict(u) for u in plan.responsible_users]
        return folder

    def new_folder(self, contact: Contact, category: str, ref_id: str | None) -> Folder:
        """Create a folder of ``category`` for ``contact``."""
        folder = Folder(
            folder_id=self.ids.next(),
            contact_id=contact.contact_id,
            category=category,
            name=contact.display_name,
        )
        contact.folders.append(folder)
        self.folders[folder.folder_id] = folder
        self.set_folder_ref(folder, ref_id)
        return folder

    def set_folder_ref(self, folder: Folder, ref_id: str | None) -> None:
        """Change a folder's REF ID, keeping the refId index current."""
        if folder.ref_id is not None and self.folders_by_ref.get(folder.ref_id) == folder.folder_id:
            del self.folders_by_ref[folder.ref_id]
        folder.ref_id = ref_id
        if ref_id is not None:
            self.folders_by_ref.setdefault(ref_id, folder.folder_id)

    # ----------------------------------------------------------------- indexes

    def _index(self, contact: Contact) -> None:
        for pair in contact.external_ids():
            self.by_external[pair] = contact.contact_id
        if contact.kind == "company" and contact.company_name:
            self.companies_by_name.setdefault(name_key(contact.company_name), []).append(
                contact.contact_id
            )
        if contact.kind == "person":
            for email in contact.emails():
                self.persons_by_email.setdefault(email.casefold(), []).append(contact.contact_id)
            for mobile in contact.mobiles():
                self.persons_by_mobile.setdefault(phone_key(mobile), []).append(contact.contact_id)

    def _unindex(self, contact: Contact) -> None:
        def drop(index: dict[str, list[str]], key: str) -> None:
            ids = index.get(key)
            if ids and contact.contact_id in ids:
                ids.remove(contact.contact_id)
                if not ids:
                    del index[key]

        if contact.kind == "company" and contact.company_name:
            drop(self.companies_by_name, name_key(contact.company_name))
        for email in contact.emails():
            drop(self.persons_by_email, email.casefold())
        for mobile in contact.mobiles():
            drop(self.persons_by_mobile, phone_key(mobile))

    # ----------------------------------------------------------------- records

    def to_json(self, contact: Contact) -> dict[str, Any]:
        """A contact in the shape of the contact request, plus its ids and folders."""
        person = None
        if contact.kind == "person":
            person = {
                **(contact.person or {}),
                "companyPersonRelation": [dict(e) for e in contact.employers],
            }
        company = None
        if contact.kind == "company":
            company = {
                "companyName": contact.company_name,
                "companyCompanyRelation": [dict(r) for r in contact.company_relations],
            }
        return {
            "contactId": contact.contact_id,
            "contactType": contact.kind,
            "name": contact.display_name,
            "person": person,
            "company": company,
            "address": [dict(a) for a in contact.addresses],
            "contacts": {
                channel: [dict(e) for e in contact.channels.get(channel, [])]
                for channel in CONTACT_CHANNELS
            },
            "description": contact.scalars.get("description"),
            "contactGroup": [
                {"name": g["name"], "description": g["description"]}
                for g in (self.groups[name_key(n)] for n in contact.group_names)
            ],
            "contactFolder": [folder.to_json() for folder in contact.folders],
            "externalId": external_id_json(contact.external_ids()),
            "regNo": contact.scalars.get("regNo"),
            "vatNo": contact.scalars.get("vatNo"),
            "trackingCode": contact.scalars.get("trackingCode"),
            "source": contact.scalars.get("source"),
            "industries": [dict(i) for i in contact.industries],
            "created": contact.created,
            "modified": contact.modified,
        }

    def records(self) -> list[dict[str, Any]]:
        """Every contact, oldest first."""
        return [self.to_json(contact) for contact in self.contacts.values()]

    def page(self, page: int, limit: int) -> list[dict[str, Any]]:
        """``GET contact?page=&limit=`` (undocumented): one page of contacts, oldest first."""
        start = (page - 1) * limit
        return [self.to_json(contact) for contact in self.contacts.slice(start, start + limit)]

    def brief(self, contact: Contact) -> dict[str, Any]:
        """The short contact shape the billing and project answers embed."""
        person = None
        if contact.kind == "person" and contact.person:
            person = {
                "firstName": contact.person.get("firstName"),
                "lastName": contact.person.get("lastName"),
            }
        return {
            "person": person,
            "company": {"companyName": contact.company_name} if contact.kind == "company" else None,
            "externalId": external_id_json(contact.external_ids()),
            "regNo": contact.scalars.get("regNo"),
            "vatNo": contact.scalars.get("vatNo"),
        }
