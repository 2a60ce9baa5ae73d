"""The Faust application: topics, tables, agents and timers wired to the logic in `pipeline`."""
