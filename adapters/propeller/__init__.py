"""Propeller (B2B commerce) adapter: companies and addresses by ``sourceId``, OAuth2 token."""

from adapters.propeller.client import BULK_MAX_ITEMS, PropellerClient
from adapters.propeller.errors import PROPELLER_RULES, propeller_error_table
from adapters.propeller.models import (
    BulkOutcome,
    PropellerAddress,
    PropellerAddressInput,
    PropellerAttribute,
    PropellerAttributeValue,
    PropellerCompany,
    PropellerCompanyInput,
    PropellerCompanyRef,
    PropellerDirective,
    PropellerParent,
    PropellerSource,
)

__all__ = [
    "BULK_MAX_ITEMS",
    "PROPELLER_RULES",
    "BulkOutcome",
    "PropellerAddress",
    "PropellerAddressInput",
    "PropellerAttribute",
    "PropellerAttributeValue",
    "PropellerClient",
    "PropellerCompany",
    "PropellerCompanyInput",
    "PropellerCompanyRef",
    "PropellerDirective",
    "PropellerParent",
    "PropellerSource",
    "propeller_error_table",
]
