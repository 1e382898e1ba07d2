"""Delivering a change to a target: the pipeline that takes deliveries to their outcome (one
delivery is a batch of one: :mod:`delivery.pipeline`), the engine, the bulk path, the retry
policy, and the sinks, one per target system.

Above :mod:`state` (the Redis state it reads and writes), below producers and workers.
"""
