"""HIPE by Packitoo: companies, contacts, custom fields and CSV imports over its REST API."""

from adapters.hipe.client import (
    HipeClient,
    build_companies_csv,
    neutralise_formula,
)
from adapters.hipe.errors import HIPE_RULES, error_rows, hipe_error_table
from adapters.hipe.models import (
    HipeCompany,
    HipeCompanyImportRow,
    HipeCompanyInput,
    HipeContact,
    HipeContactInput,
    HipeCustomFieldNode,
    HipeCustomFieldOption,
    HipeId,
    HipeImport,
    HipeImportResult,
    HipeImportRowError,
    HipeImportStatus,
    hipe_id,
)

__all__ = [
    "HIPE_RULES",
    "HipeClient",
    "HipeCompany",
    "HipeCompanyImportRow",
    "HipeCompanyInput",
    "HipeContact",
    "HipeContactInput",
    "HipeCustomFieldNode",
    "HipeCustomFieldOption",
    "HipeId",
    "HipeImport",
    "HipeImportResult",
    "HipeImportRowError",
    "HipeImportStatus",
    "build_companies_csv",
    "error_rows",
    "hipe_error_table",
    "hipe_id",
    "neutralise_formula",
]
