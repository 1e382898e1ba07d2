"""``python -m cli``: the same as the ``erpsync`` command."""

from cli.app import main

main()
