"""pipeline's adapters and drivers: everything that talks to Kafka, ClickHouse, SMTP or Prometheus
(store, smtp, metrics, kafka_*, sinks, report_gather) and the offline driver (replay). The rest of
`pipeline` is the pure core and never imports this package (import-linter, pyproject.toml)."""
