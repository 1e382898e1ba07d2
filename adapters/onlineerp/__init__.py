"""OnlineERP / ERPConnector adapter: customers, their contacts, products and customer invoices."""

from adapters.onlineerp.client import (
    MAX_PAGE_SIZE,
    InvalidRecord,
    OnlineErpClient,
    odata_literal,
    where,
)
from adapters.onlineerp.errors import ERROR_RULES, table
from adapters.onlineerp.models import (
    ErpAddress,
    ErpBillTo,
    ErpContact,
    ErpCustomer,
    ErpDeliveryAddress,
    ErpInvoice,
    ErpInvoiceCreated,
    ErpInvoiceLine,
    ErpProduct,
    ErpProductGroup,
)

__all__ = [
    "ERROR_RULES",
    "MAX_PAGE_SIZE",
    "ErpAddress",
    "ErpBillTo",
    "ErpContact",
    "ErpCustomer",
    "ErpDeliveryAddress",
    "ErpInvoice",
    "ErpInvoiceCreated",
    "ErpInvoiceLine",
    "ErpProduct",
    "ErpProductGroup",
    "InvalidRecord",
    "OnlineErpClient",
    "odata_literal",
    "table",
    "where",
]
