"""Operator services behind the CLI: dead-letter operations (:mod:`cli.services.replay`)
and what ``erpsync status`` reads (:mod:`cli.services.status`)."""
