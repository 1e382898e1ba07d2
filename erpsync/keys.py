"""The namespace of record keys: which key erpsync knows a source record by.

Record keys are namespaced by source system (:func:`record_key`): a producer gives every
record the key of its source's namespace, and that one key is what the ledger, the record
locks, the newest-version index, dead letters and the targets' external ids are built from,
so a Propeller company ``42`` (``propeller:42``) and an ERP customer ``42`` never share any
of them. Each entity's home source (:data:`HOME_SOURCES`: the ERP for customers and
products, Atollon for billing, the only sources those entities had before namespacing) keeps
bare keys, so the ledgers, locks and external ids of existing deployments stay where they
are, with no migration.

The Redis keys built from them are in :mod:`state.keys`.
"""

from __future__ import annotations

from erpsync.flows import HOME_SOURCES, SOURCES

__all__ = ["HOME_SOURCES", "NAMESPACE_SEPARATOR", "key_source", "record_key"]

#: between a namespace and the source's own key: ``propeller:42``
NAMESPACE_SEPARATOR = ":"


def record_key(source: str, entity: str, key: str) -> str:
    """The key erpsync knows a source record by: bare for the home source, else namespaced."""
    if HOME_SOURCES.get(entity) == source:
        return key
    return f"{source}{NAMESPACE_SEPARATOR}{key}"


def key_source(entity: str, key: str) -> str:
    """The source system whose namespace a record key is in (the inverse of record_key)."""
    home = HOME_SOURCES[entity]
    for source, known in SOURCES:
        if known == entity and source != home and key.startswith(f"{source}{NAMESPACE_SEPARATOR}"):
            return source
    return home
