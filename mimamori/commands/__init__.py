"""One module per CLI command: `HELP`, `add_arguments(parser)`, `run(args, settings) -> int`.

The CLI finds them here; a module named `purge_tenant` is the command `purge-tenant`.
"""
