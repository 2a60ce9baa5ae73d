"""One module per CLI command: `HELP`, `add_arguments(parser)`, `run(args, settings) -> int`.

The CLI finds them here; a module named `purge_tenant` is the command `purge-tenant`. A command
that finds an argument wrong raises `UsageError`.
"""


class UsageError(Exception):
    """A wrong argument: one line on stderr, exit status 2."""
