"""The pipeline's state in Redis: every key (:mod:`state.keys`), the ledger, record locks,
pending deliveries, the delayed set and outcomes (:mod:`state.store`), stored batches
(:mod:`state.batches`), dead letters (:mod:`state.dlq`), rate limits and circuits
(:mod:`state.limits`), leases (:mod:`state.leases`), and everything that knows how kombu
keeps messages in Redis (:mod:`state.broker`, :mod:`state.publish`, :mod:`state.pump`,
:mod:`state.messages`).

Below producers, workers and the CLI: it imports ``erpsync`` and ``adapters`` only.
"""
