"""The shell: the `mimamori` command, its subcommands and the demo (on top of agents/ and pipeline/)."""
