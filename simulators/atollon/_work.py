"""Activities with billing items, projects, documents, folders and tracking codes.

Billing is the crawler's work queue: ``GET billing?billingStatus=ToBeInvoiced`` lists the
activities that still have items in that state (with only those items), and ``PUT billing``
moves items to another state. Setting a state an item already has succeeds, so a retried
or replayed update is harmless. An activity's status changes only once none of its items
is left ``ToBeInvoiced`` (the page: "Activity status will be changed only if there are no
remaining billing items to be invoiced"); a project's status changes when asked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from simulators.atollon._contacts import (
    Contact,
    ContactStore,
    Folder,
    category_of_type,
)
from simulators.atollon._products import Product, ProductStore
from simulators.atollon._request import (
    ExternalId,
    FailError,
    IdSequence,
    describe,
    external_id_json,
    external_ids,
    filled,
    now,
    number,
    object_list,
    optional_object,
    require_object,
    text,
)

#: billing states, in the order of their documented numbers 0..7
BILLING_STATES: tuple[str, ...] = (
    "SalesItems",
    "Pending",
    "ForApproval",
    "ToBeInvoiced",
    "Billed",
    "ApprovedByClient",
    "Postponed",
    "Cancelled",
)
TO_BE_INVOICED = "ToBeInvoiced"
TRACKING_CODE_TYPES = ("Dealer", "Partner")
PROJECT_TEXT_FIELDS = (
    "name",
    "refId",
    "statusName",
    "description",
    "category",
    "dimension1Name",
    "dimension2Name",
    "dimension3Name",
)
#: what UpdateActivity changes of an activity and of its billing items
ACTIVITY_TEXT_FIELDS = ("name", "refId", "statusName", "startDate", "finalDate", "description")
ITEM_TEXT_FIELDS = (
    "productName",
    "productRefid",
    "name",
    "refId",
    "description",
    "currency",
    "billingDate",
)
ITEM_NUMBER_FIELDS = ("quantity", "unitPrice", "vatValue")
CONTACT_NOT_FOUND = "Contact not found"
PRODUCT_NOT_FOUND = "Product not found"
PROJECT_SUMMARY_FIELDS = (
    "id",
    "name",
    "refId",
    "statusName",
    "description",
    "created",
    "modified",
)


def billing_state(value: str | None, where: str) -> str:
    """A documented billing state name, or a FAIL."""
    if value is None:
        raise FailError(f"Invalid request: {where} is required")
    if value not in BILLING_STATES:
        raise FailError(
            f"Unknown billing status: {value} (expected one of {', '.join(BILLING_STATES)})"
        )
    return value


@dataclass
class Document:
    """A file attached to an activity, served by ``download_document``."""

    doc_id: str
    name: str
    content: bytes
    media_type: str


@dataclass
class Activity:
    """A service activity and its billing items (statuses change; the rest is as seeded)."""

    activity: dict[str, Any]
    project_id: str | None
    context: dict[str, Any]
    items: list[dict[str, Any]]
    documents: list[dict[str, str]] = field(default_factory=list)

    @property
    def activity_id(self) -> str:
        return str(self.activity["id"])

    def remaining_to_invoice(self) -> int:
        """How many items are still ``ToBeInvoiced``."""
        return sum(1 for item in self.items if item["billingStatus"] == TO_BE_INVOICED)


def _pdf(title: str) -> bytes:
    """A tiny valid PDF naming ``title`` (enough for a client to store and open)."""
    safe = title.encode("ascii", "replace").replace(b"(", b"[").replace(b")", b"]")
    stream = b"BT /F1 12 Tf 72 720 Td (" + safe + b") Tj ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number_, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += str(number_).encode() + b" 0 obj\n" + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 " + str(len(objects) + 1).encode() + b"\n0000000000 65535 f \n"
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += b"trailer\n<< /Size " + str(len(objects) + 1).encode() + b" /Root 1 0 R >>\n"
    out += b"startxref\n" + str(xref).encode() + b"\n%%EOF\n"
    return bytes(out)


class WorkStore:
    """Activities, billing items, projects, documents and tracking codes."""

    def __init__(self, ids: IdSequence, contacts: ContactStore, products: ProductStore) -> None:
        self.ids = ids
        self.contacts = contacts
        self.products = products
        self.activities: dict[str, Activity] = {}
        self.items: dict[str, tuple[Activity, dict[str, Any]]] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.projects_by_external: dict[ExternalId, str] = {}
        self.documents: dict[str, Document] = {}
        self.tracking_codes: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        """Forget everything."""
        self.clear_billing()
        self.projects.clear()
        self.projects_by_external.clear()
        self.tracking_codes.clear()

    def clear_billing(self) -> None:
        """Forget the activities, their items and documents."""
        self.activities.clear()
        self.items.clear()
        self.documents.clear()

    # ------------------------------------------------------------------ seed

    def load_activity(self, seeded: dict[str, Any], document_id: str) -> int:
        """Store one activity in the documented billing shape; returns its item count."""
        data = copy.deepcopy(seeded)
        project = data.get("project") or {}
        project_id = str(project["id"]) if project.get("id") is not None else None
        if project_id is not None and project_id not in self.projects:
            self.projects[project_id] = {**project, "id": project_id, "externalId": []}
        context = {key: data.get(key) for key in ("folder", "contact", "customer")}
        context["customerContact"] = data.get("customerContact")
        ref = data["activity"].get("refId") or data["activity"]["id"]
        document = Document(
            doc_id=document_id,
            name=f"Worksheet {ref}.pdf",
            content=_pdf(f"Worksheet {ref}"),
            media_type="application/pdf",
        )
        self.documents[document.doc_id] = document
        activity = Activity(
            activity=data["activity"],
            project_id=project_id,
            context=context,
            items=data.get("billingItems") or [],
            documents=[*data.get("documents", []), {"name": document.name, "id": document.doc_id}],
        )
        self.activities[activity.activity_id] = activity
        for item in activity.items:
            self.items[str(item["id"])] = (activity, item)
        return len(activity.items)

    # --------------------------------------------------------------- billing

    def _project_summary(self, project_id: str | None) -> dict[str, Any] | None:
        if project_id is None or project_id not in self.projects:
            return None
        project = self.projects[project_id]
        return {key: project.get(key) for key in PROJECT_SUMMARY_FIELDS}

    def render(self, activity: Activity, status: str | None) -> dict[str, Any]:
        """An activity in the documented billing shape; items limited to ``status``."""
        items = [i for i in activity.items if status is None or i["billingStatus"] == status]
        return {
            "activity": dict(activity.activity),
            "project": self._project_summary(activity.project_id),
            "folder": copy.deepcopy(activity.context["folder"]),
            "contact": copy.deepcopy(activity.context["contact"]),
            "customer": copy.deepcopy(activity.context["customer"]),
            "customerContact": copy.deepcopy(activity.context["customerContact"]),
            "billingItems": copy.deepcopy(items),
            "documents": [dict(d) for d in activity.documents],
        }

    def list_billing(self, status: str | None) -> list[dict[str, Any]]:
        """``GET billing``: activities with items in ``status`` (all items when None)."""
        if status is not None:
            billing_state(status, "billingStatus")
        return [
            self.render(activity, status)
            for activity in self.activities.values()
            if status is None or any(i["billingStatus"] == status for i in activity.items)
        ]

    def update_billing(self, body: Any) -> dict[str, Any]:
        """``PUT billing``: set item states, then activity and project statuses."""
        if not isinstance(body, list):
            raise FailError("Invalid request: the body must be a list of activities")
        plans = [self._plan_billing(entry, i) for i, entry in enumerate(body)]
        # Every entry is valid: apply them all.
        answer = []
        stamp = now()
        for activity, activity_status, project_id, project_status, updates in plans:
            touched = set()
            for owner, item, state in updates:
                if item["billingStatus"] != state:
                    item["billingStatus"] = state
                    touched.add(owner.activity_id)
                    owner.activity["modified"] = stamp
            status_changed = False
            if (
                activity is not None
                and activity_status is not None
                and activity.remaining_to_invoice() == 0
                and activity.activity.get("statusName") != activity_status
            ):
                activity.activity["statusName"] = activity_status
                activity.activity["modified"] = stamp
                status_changed = True
            if project_id is not None and project_status is not None:
                project = self.projects[project_id]
                if project.get("statusName") != project_status:
                    project["statusName"] = project_status
                    project["modified"] = stamp
            answer.append(
                {
                    "activity": None
                    if activity is None
                    else {
                        "id": activity.activity_id,
                        "statusName": activity.activity.get("statusName"),
                        "statusChanged": status_changed,
                        "remainingToBeInvoiced": activity.remaining_to_invoice(),
                    },
                    "project": None
                    if project_id is None
                    else {"id": project_id, "statusName": self.projects[project_id]["statusName"]},
                    "billingItems": [
                        {"id": str(item["id"]), "billingStatus": item["billingStatus"]}
                        for _, item, _ in updates
                    ],
                }
            )
        return {"result": "SUCCESS", "activities": answer}

    def _plan_billing(
        self, entry: Any, index: int
    ) -> tuple[
        Activity | None,
        str | None,
        str | None,
        str | None,
        list[tuple[Activity, dict[str, Any], str]],
    ]:
        where = f"[{index}]"
        entry = require_object(entry, where)
        activity_body = optional_object(entry, "activity", where)
        activity = None
        activity_status = None
        if activity_body is not None:
            activity_id = filled(activity_body, "id", f"{where}.activity")
            activity_status = filled(activity_body, "statusName", f"{where}.activity")
            if activity_id is not None:
                activity = self.activities.get(activity_id)
                if activity is None:
                    raise FailError(f"Activity not found: {activity_id}")
        project_body = optional_object(entry, "project", where)
        project_id = project_status = None
        if project_body is not None:
            project_id = filled(project_body, "id", f"{where}.project")
            project_status = filled(project_body, "statusName", f"{where}.project")
            if project_id is not None and project_id not in self.projects:
                raise FailError(f"Project not found: {project_id}")
            if project_id is None and project_status is not None:
                if activity is None or activity.project_id is None:
                    raise FailError(f"Invalid request: {where}.project.id is required")
                project_id = activity.project_id
        updates = []
        for j, item_body in enumerate(object_list(entry, "billingItems", where) or []):
            item_where = f"{where}.billingItems[{j}]"
            item_id = filled(item_body, "id", item_where)
            if item_id is None:
                raise FailError(f"Invalid request: {item_where}.id is required")
            state = billing_state(
                filled(item_body, "billingStatus", item_where), f"{item_where}.billingStatus"
            )
            located = self.items.get(item_id)
            if located is None or (activity is not None and located[0] is not activity):
                raise FailError(f"Billing item not found: {item_id}")
            updates.append((located[0], located[1], state))
        if activity is None and activity_status is not None:
            owners = {owner.activity_id for owner, _, _ in updates}
            if len(owners) != 1:
                raise FailError(f"Invalid request: {where}.activity.id is required")
            activity = self.activities[owners.pop()]
        return activity, activity_status, project_id, project_status, updates

    def get_activity(self, activity_id: str | None, status: str | None) -> dict[str, Any]:
        """``GET activity?id=``: one activity; with ``billingStatus``, its items in that state."""
        if activity_id is None:
            raise FailError("Invalid request: id is required")
        activity = self.activities.get(activity_id)
        if activity is None:
            raise FailError(f"Activity not found: {activity_id}")
        project = self.projects.get(activity.project_id or "", {})
        customer = activity.context.get("customerContact") or activity.context.get("contact") or {}
        answer: dict[str, Any] = {
            **dict(activity.activity),
            "folderName": (activity.context.get("folder") or {}).get("name"),
            "project": activity.project_id,
            "projectName": project.get("name"),
            "projectExternalId": copy.deepcopy(project.get("externalId", [])),
            "customer": {"contactExternalId": copy.deepcopy(customer.get("externalId", []))},
            "documents": [dict(d) for d in activity.documents],
        }
        if status is not None:
            billing_state(status, "billingStatus")
            answer["billingItems"] = copy.deepcopy(
                [i for i in activity.items if i["billingStatus"] == status]
            )
        return answer

    def list_activities(self) -> list[dict[str, Any]]:
        """ListActivity (``GET activity`` without ``id``; the page shows the answer, not the
        request): every activity in the documented list shape, oldest first."""
        listed = []
        for activity in self.activities.values():
            data = activity.activity
            project = self.projects.get(activity.project_id or "", {})
            listed.append(
                {
                    "id": activity.activity_id,
                    "name": data.get("name"),
                    "customStateName": data.get("statusName"),
                    "created": data.get("created"),
                    "modified": data.get("modified"),
                    "folderName": (activity.context.get("folder") or {}).get("name"),
                    "project": activity.project_id,
                    "projectName": project.get("name"),
                    "refId": data.get("refId"),
                    "startDate": data.get("startDate"),
                    "finalDate": data.get("finalDate"),
                }
            )
        return listed

    def update_activity(self, body: Any) -> dict[str, Any]:
        """UpdateActivity (``PUT activity``): the activity's given fields, and its billing
        items: one with a known id gets the given fields, one with a new id is added."""
        body = require_object(body, "the request body")
        activity_body = optional_object(body, "activity", "")
        if activity_body is None:
            raise FailError("Invalid request: activity is required")
        activity_id = filled(activity_body, "id", "activity")
        if activity_id is None:
            raise FailError("Invalid request: activity.id is required")
        activity = self.activities.get(activity_id)
        if activity is None:
            raise FailError(f"Activity not found: {activity_id}")
        values = {
            key: text(activity_body, key, "activity")
            for key in ACTIVITY_TEXT_FIELDS
            if key in activity_body
        }
        changes = []
        for i, item_body in enumerate(object_list(body, "billingItems", "") or []):
            where = f"billingItems[{i}]"
            item: dict[str, Any] = {}
            for key in ITEM_TEXT_FIELDS:
                if key in item_body:
                    item[key] = text(item_body, key, where)
            for key in ITEM_NUMBER_FIELDS:
                if key in item_body:
                    item[key] = number(item_body, key, where)
            if "billingStatus" in item_body:
                item["billingStatus"] = billing_state(
                    filled(item_body, "billingStatus", where), f"{where}.billingStatus"
                )
            if "productExternalId" in item_body:
                ids = external_ids(item_body, "productExternalId", where) or []
                item["productExternalId"] = external_id_json(ids)
            item_id = filled(item_body, "id", where)
            located = self.items.get(item_id or "")
            if located is not None and located[0] is not activity:
                raise FailError(f"Billing item not found: {item_id}")
            changes.append((item_id, located, item))
        # Everything is valid: apply.
        stamp = now()
        activity.activity.update(values)
        activity.activity["modified"] = stamp
        for item_id, located, item in changes:
            if located is not None:
                located[1].update(item)
                continue
            new: dict[str, Any] = {
                "id": item_id or self.ids.next(),
                "billingStatus": "ToBeInvoiced",
                "billingType": 1,
                "productExternalId": [],
                **item,
            }
            activity.items.append(new)
            self.items[str(new["id"])] = (activity, new)
        return {"result": "SUCCESS", "activityId": activity.activity_id}

    def billing_records(self) -> list[dict[str, Any]]:
        """Every activity with all its items and their current states."""
        return [self.render(activity, None) for activity in self.activities.values()]

    def download(self, doc_id: str | None) -> Document:
        """The document ``doc_id``, or a FAIL."""
        if doc_id is None:
            raise FailError("Invalid request: docId is required")
        document = self.documents.get(doc_id)
        if document is None:
            raise FailError(f"Document not found: {doc_id}")
        return document

    # --------------------------------------------------------------- folders

    def post_folder(self, body: Any) -> dict[str, Any]:
        """``POST folder``: find or create a folder of a contact found by external id."""
        body = require_object(body, "the request body")
        folder_body = optional_object(body, "folder", "")
        contact_body = optional_object(body, "contact", "")
        if folder_body is None or contact_body is None:
            raise FailError("Invalid request: folder and contact are required")
        ids = external_ids(contact_body, "externalId", "contact") or []
        if not ids:
            raise FailError("Invalid request: contact.externalId is required")
        type_name = filled(folder_body, "typeName", "folder") or filled(
            folder_body, "category", "folder"
        )
        if type_name is None:
            raise FailError("Invalid request: folder.typeName is required")
        category = category_of_type(type_name)
        form = optional_object(body, "form", "") or optional_object(contact_body, "form", "contact")
        contact = self.contacts.require_by_external(ids, CONTACT_NOT_FOUND)
        ref_id = filled(folder_body, "refId", "folder")
        folder = self.contacts.folder_of(contact, category, ref_id)
        if folder is None:
            folder = self.contacts.new_folder(contact, category, ref_id)
        elif ref_id is not None:
            self.contacts.set_folder_ref(folder, ref_id)
        name = filled(folder_body, "name", "folder")
        if name is not None:
            folder.name = name
        if form is not None:
            folder.form.update(form)
        folder.modified = now()
        return {"result": "SUCCESS", "folderId": folder.folder_id, "contactId": contact.contact_id}

    def folder_sample(self, folder_id: str | None) -> dict[str, Any]:
        """``GET folder_sample?id=``: a folder with its contact, in the documented shape."""
        folder = self.contacts.folders.get(folder_id or "")
        if folder is None:
            raise FailError(f"Folder not found: {folder_id}")
        contact = self.contacts.contacts[folder.contact_id]
        return {
            "folder": {
                "refId": folder.ref_id,
                "name": folder.name,
                "typeName": folder.to_json()["typeName"],
            },
            "contact": {
                "externalId": external_id_json(contact.external_ids()),
                "company": {
                    "name": contact.display_name,
                    "regNumber": contact.scalars.get("regNo") or "",
                    "VATNumber": contact.scalars.get("vatNo") or "",
                },
            },
            "form": dict(folder.form),
        }

    # -------------------------------------------------------------- projects

    def _resolve_items(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Technology items with their product and supplier found, or a FAIL."""
        resolved = []
        for i, item in enumerate(items):
            where = f"technologyItems[{i}]"
            product_ids = external_ids(item, "externalId", where) or []
            ref = filled(item, "productRefid", where)
            name = filled(item, "productName", where)
            product: Product | None = None
            if product_ids:
                product = self.products.find_by_external(product_ids)
                if product is None:
                    raise FailError(f"{PRODUCT_NOT_FOUND}: {describe(product_ids)}")
            elif ref is not None:
                product = self.products.find_by_code(ref, name)
                if product is None:
                    raise FailError(f"{PRODUCT_NOT_FOUND}: {ref}")
            supplier_body = optional_object(item, "supplier", where)
            supplier_id = None
            if supplier_body is not None:
                supplier_ids = external_ids(supplier_body, "contactExternalId", where) or []
                if supplier_ids:
                    supplier = self.contacts.require_by_external(supplier_ids, CONTACT_NOT_FOUND)
                    supplier_id = supplier.contact_id
            resolved.append(
                {
                    "id": filled(item, "id", where) or "",
                    "type": 3,
                    "productId": product.product_id if product else None,
                    "productName": product.name if product else name,
                    "productRefid": product.ref_id if product else ref,
                    "name": text(item, "name", where),
                    "description": text(item, "description", where),
                    "quantity": number(item, "quantity", where),
                    "unitPrice": number(item, "unitPrice", where),
                    "currency": text(item, "currency", where),
                    "billingDate": text(item, "billingDate", where),
                    "refId": text(item, "refId", where),
                    "externalId": external_id_json(product_ids),
                    "supplierContactId": supplier_id,
                }
            )
        return resolved

    def _find_project(self, project_body: dict[str, Any]) -> dict[str, Any] | None:
        ids = external_ids(project_body, "externalId", "project") or []
        owners = {self.projects_by_external[p] for p in ids if p in self.projects_by_external}
        if len(owners) > 1:
            raise FailError(f"externalId conflict: {describe(ids)} belong to different projects")
        if owners:
            return self.projects[owners.pop()]
        project_id = filled(project_body, "id", "project")
        if project_id is not None and project_id in self.projects:
            return self.projects[project_id]
        return None

    def upsert_project(self, body: Any, *, create: bool) -> dict[str, Any]:
        """``POST project`` (create, or update the project with the same external id) and
        ``PUT project`` (update an existing one)."""
        body = require_object(body, "the request body")
        project_body = optional_object(body, "project", "")
        if project_body is None:
            raise FailError("Invalid request: project is required")
        project = self._find_project(project_body)
        if project is None and not create:
            key = filled(project_body, "id", "project") or describe(
                external_ids(project_body, "externalId", "project") or []
            )
            raise FailError(f"Project not found: {key}")

        contact_body = optional_object(body, "contact", "")
        customer_body = optional_object(project_body, "customer", "project")
        contact_ids = (
            (external_ids(contact_body, "externalId", "contact") if contact_body else None)
            or (
                external_ids(customer_body, "contactExternalId", "project.customer")
                if customer_body
                else None
            )
            or []
        )
        contact: Contact | None = None
        if contact_ids:
            contact = self.contacts.require_by_external(contact_ids, CONTACT_NOT_FOUND)
        elif project is None:
            raise FailError("Invalid request: contact.externalId is required")

        folder_body = optional_object(body, "folder", "")
        raw_category = (filled(folder_body, "category", "folder") if folder_body else None) or (
            filled(customer_body, "contextCategory", "project.customer") if customer_body else None
        )
        category = category_of_type(raw_category) if raw_category else None
        if contact is not None and category is None and not contact.folders:
            raise FailError("Invalid request: folder.category is required")

        values = {key: text(project_body, key, "project") for key in PROJECT_TEXT_FIELDS}
        values = {key: value for key, value in values.items() if key in project_body}
        if project is None and not filled(project_body, "name", "project"):
            raise FailError("Project name is required")
        items_body = object_list(body, "technologyItems", "") or []
        items = self._resolve_items(items_body)
        form_values = object_list(body, "formValues", "")
        project_ids = external_ids(project_body, "externalId", "project") or []

        # Everything is resolved: apply.
        folder: Folder | None = None
        if contact is not None:
            folder = self.contacts.folder_of(contact, category) if category else contact.folders[0]
            if folder is None and category is not None:
                ref_id = filled(folder_body, "refId", "folder") if folder_body else None
                folder = self.contacts.new_folder(contact, category, ref_id)
        stamp = now()
        if project is None:
            project = {
                "id": self.ids.next(),
                "name": None,
                "refId": None,
                "statusName": None,
                "description": None,
                "category": None,
                "created": stamp,
                "externalId": [],
                "technologyItems": [],
                "formValues": [],
            }
            self.projects[project["id"]] = project
        project.update(values)
        project["modified"] = stamp
        if contact is not None:
            project["contactId"] = contact.contact_id
        if folder is not None:
            project["folder"] = folder.folder_id
            project["folderName"] = folder.name
        stored_items: list[dict[str, Any]] = project.setdefault("technologyItems", [])
        for item in items:
            # an item with a known id is replaced, so a replayed request adds nothing
            index = next(
                (i for i, old in enumerate(stored_items) if item["id"] and old["id"] == item["id"]),
                None,
            )
            item["id"] = item["id"] or self.ids.next()
            if index is None:
                stored_items.append(item)
            else:
                stored_items[index] = item
        if form_values is not None:
            project["formValues"] = [dict(v) for v in form_values]
        known = {(e["system"], e["id"]) for e in project.get("externalId", [])}
        for pair in project_ids:
            if pair not in known:
                project.setdefault("externalId", []).append({"system": pair[0], "id": pair[1]})
            self.projects_by_external[pair] = project["id"]
        return {
            "result": "SUCCESS",
            "projectId": project["id"],
            "folderId": project.get("folder"),
            "contactId": project.get("contactId"),
            "project": {"externalId": copy.deepcopy(project.get("externalId", []))},
        }

    def get_project(self, project_id: str | None) -> dict[str, Any]:
        """``GET project?id=``: the project and its contact."""
        project = self.projects.get(project_id or "")
        if project is None:
            raise FailError(f"Project not found: {project_id}")
        contact: dict[str, Any] | None = None
        if project.get("contactId") in self.contacts.contacts:
            contact = self.contacts.brief(self.contacts.contacts[project["contactId"]])
        else:
            for activity in self.activities.values():
                if activity.project_id == project["id"]:
                    contact = copy.deepcopy(activity.context.get("contact"))
                    break
        shown = copy.deepcopy(project)
        shown["externalId"] = [
            {"externalSystem": e["system"], "externalId": e["id"]}
            for e in project.get("externalId", [])
        ]
        return {"project": shown, "contact": contact}

    # --------------------------------------------------------- tracking codes

    def post_tracking_code(self, body: Any) -> dict[str, Any]:
        """``POST tracking_code``: file a Dealer/Partner code against a contact's folder."""
        body = require_object(body, "the request body")
        code = filled(body, "code")
        if code is None:
            raise FailError("Invalid request: code is required")
        type_name = filled(body, "trackingCodeTypeName")
        if type_name not in TRACKING_CODE_TYPES:
            raise FailError(f"Unknown tracking code type: {type_name} (expected Dealer or Partner)")
        folder_body = optional_object(body, "contactFolder", "")
        if folder_body is None:
            raise FailError("Invalid request: contactFolder is required")
        folder = None
        folder_id = filled(folder_body, "id", "contactFolder")
        if folder_id is not None:
            folder = self.contacts.folders.get(folder_id)
        if folder is None:
            contact_body = optional_object(folder_body, "contact", "contactFolder")
            ids = (
                external_ids(contact_body, "externalId", "contactFolder.contact")
                if contact_body
                else None
            ) or []
            if not ids:
                raise FailError(f"Folder not found: {folder_id}")
            contact = self.contacts.require_by_external(ids, CONTACT_NOT_FOUND)
            raw = filled(folder_body, "category", "contactFolder")
            category = category_of_type(raw) if raw else None
            folder = self.contacts.folder_of(
                contact, category, filled(folder_body, "refId", "contactFolder")
            )
            if folder is None and category is None and contact.folders:
                folder = contact.folders[0]
            if folder is None:
                raise FailError(f"Folder not found for contact {describe(ids)}")
        existing = self.tracking_codes.get(code)
        record = {
            "trackingCodeId": existing["trackingCodeId"] if existing else self.ids.next(),
            "code": code,
            "userName": filled(body, "userName"),
            "trackingCodeTypeName": type_name,
            "folderId": folder.folder_id,
            "contactId": folder.contact_id,
        }
        self.tracking_codes[code] = record
        return {
            "result": "SUCCESS",
            "trackingCodeId": record["trackingCodeId"],
            "folderId": folder.folder_id,
        }
